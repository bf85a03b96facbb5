/* version.h - the etcd versions we report.  Clients gate features on the
 * server version, so we report the etcd 3.4 release whose API we implement. */
#ifndef ETCD_VERSION_H
#define ETCD_VERSION_H

#define ETCD_SERVER_VERSION "3.4.23"
#define ETCD_CLUSTER_VERSION "3.4.0"
#define ETCD_IMPL "etcd-in-C"

#endif
