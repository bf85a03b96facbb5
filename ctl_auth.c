/* ctl_auth.c - etcdctl's auth, user and role commands (ctlv3/command/
 * auth_command.go, user_command.go, role_command.go and the printers'
 * Role and User parts): enabling authentication (adding the root role when
 * etcd asks for it), users with passwords read from the argument, a flag,
 * stdin or speakeasy's prompt, roles and their key-range permissions, in
 * every output format etcdctl has for them.
 *
 * The --user/--password global options are ctl.c's (the client
 * authenticates before its first call); these commands only call the Auth
 * service.  A server without one answers Unimplemented, which is reported
 * as etcdctl reports any RPC error.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool user_interactive, user_no_password, user_detail, passwd_interactive;
static char *user_new_password;
static bool perm_prefix, perm_from_key;

static struct ctl_flag user_add_flags[] = {
    {"interactive", 0, CTL_BOOL, "true", "Read password from stdin instead of interactive terminal", &user_interactive},
    {"new-user-password", 0, CTL_STRING, "", "Supply password from the command line flag", &user_new_password},
    {"no-password", 0, CTL_BOOL, "false", "Create a user without password (CN based auth only)", &user_no_password},
    {0},
};

static struct ctl_flag user_get_flags[] = {
    {"detail", 0, CTL_BOOL, "false", "Show permissions of roles granted to the user", &user_detail},
    {0},
};

static struct ctl_flag user_passwd_flags[] = {
    {"interactive", 0, CTL_BOOL, "true", "If true, read password from stdin instead of interactive terminal", &passwd_interactive},
    {0},
};

static struct ctl_flag grant_perm_flags[] = {
    {"from-key", 0, CTL_BOOL, "false", "grant a permission of keys that are greater than or equal to the given key using byte compare", &perm_from_key},
    {"prefix", 0, CTL_BOOL, "false", "grant a prefix permission", &perm_prefix},
    {0},
};

static struct ctl_flag revoke_perm_flags[] = {
    {"from-key", 0, CTL_BOOL, "false", "revoke a permission of keys that are greater than or equal to the given key using byte compare", &perm_from_key},
    {"prefix", 0, CTL_BOOL, "false", "revoke a prefix permission", &perm_prefix},
    {0},
};

static int auth_enable_run(struct ctl_cmd *cmd, int argc, char **argv);
static int auth_disable_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_add_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_delete_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_get_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_list_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_passwd_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_grant_run(struct ctl_cmd *cmd, int argc, char **argv);
static int user_revoke_run(struct ctl_cmd *cmd, int argc, char **argv);
static int role_add_run(struct ctl_cmd *cmd, int argc, char **argv);
static int role_delete_run(struct ctl_cmd *cmd, int argc, char **argv);
static int role_get_run(struct ctl_cmd *cmd, int argc, char **argv);
static int role_list_run(struct ctl_cmd *cmd, int argc, char **argv);
static int role_grant_run(struct ctl_cmd *cmd, int argc, char **argv);
static int role_revoke_run(struct ctl_cmd *cmd, int argc, char **argv);

/* ---- the command tree ---- */

static struct ctl_cmd cmd_auth_disable = {
    .use = "disable", .short_desc = "Disables authentication", .run = auth_disable_run,
};
static struct ctl_cmd cmd_auth_enable = {
    .use = "enable", .short_desc = "Enables authentication", .run = auth_enable_run,
};
static struct ctl_cmd *const auth_subs[] = {&cmd_auth_disable, &cmd_auth_enable, NULL};

struct ctl_cmd ctl_cmd_auth = {
    .use = "auth <enable or disable>", .short_desc = "Enable or disable authentication",
    .subs = auth_subs,
};

static struct ctl_cmd cmd_user_add = {
    .use = "add <user name or user:password> [options]", .short_desc = "Adds a new user",
    .flags = user_add_flags, .run = user_add_run,
};
static struct ctl_cmd cmd_user_delete = {
    .use = "delete <user name>", .short_desc = "Deletes a user", .run = user_delete_run,
};
static struct ctl_cmd cmd_user_get = {
    .use = "get <user name> [options]", .short_desc = "Gets detailed information of a user",
    .flags = user_get_flags, .run = user_get_run,
};
static struct ctl_cmd cmd_user_grant = {
    .use = "grant-role <user name> <role name>", .short_desc = "Grants a role to a user",
    .run = user_grant_run,
};
static struct ctl_cmd cmd_user_list = {
    .use = "list", .short_desc = "Lists all users", .run = user_list_run,
};
static struct ctl_cmd cmd_user_passwd = {
    .use = "passwd <user name> [options]", .short_desc = "Changes password of user",
    .flags = user_passwd_flags, .run = user_passwd_run,
};
static struct ctl_cmd cmd_user_revoke = {
    .use = "revoke-role <user name> <role name>", .short_desc = "Revokes a role from a user",
    .run = user_revoke_run,
};
static struct ctl_cmd *const user_subs[] = {
    &cmd_user_add, &cmd_user_delete, &cmd_user_get, &cmd_user_grant, &cmd_user_list,
    &cmd_user_passwd, &cmd_user_revoke, NULL,
};

struct ctl_cmd ctl_cmd_user = {
    .use = "user <subcommand>", .short_desc = "User related commands", .subs = user_subs,
};

static struct ctl_cmd cmd_role_add = {
    .use = "add <role name>", .short_desc = "Adds a new role", .run = role_add_run,
};
static struct ctl_cmd cmd_role_delete = {
    .use = "delete <role name>", .short_desc = "Deletes a role", .run = role_delete_run,
};
static struct ctl_cmd cmd_role_get = {
    .use = "get <role name>", .short_desc = "Gets detailed information of a role",
    .run = role_get_run,
};
static struct ctl_cmd cmd_role_grant = {
    .use = "grant-permission [options] <role name> <permission type> <key> [endkey]",
    .short_desc = "Grants a key to a role", .flags = grant_perm_flags, .run = role_grant_run,
};
static struct ctl_cmd cmd_role_list = {
    .use = "list", .short_desc = "Lists all roles", .run = role_list_run,
};
static struct ctl_cmd cmd_role_revoke = {
    .use = "revoke-permission <role name> <key> [endkey]",
    .short_desc = "Revokes a key from a role", .flags = revoke_perm_flags, .run = role_revoke_run,
};
static struct ctl_cmd *const role_subs[] = {
    &cmd_role_add, &cmd_role_delete, &cmd_role_get, &cmd_role_grant, &cmd_role_list,
    &cmd_role_revoke, NULL,
};

struct ctl_cmd ctl_cmd_role = {
    .use = "role <subcommand>", .short_desc = "Role related commands", .subs = role_subs,
};

/* ---- helpers ---- */

static struct pb_bytes bstr(const char *s)
{
    return (struct pb_bytes){(const uint8_t *)s, strlen(s)};
}

/* One Auth call with context.TODO() (deadline 0) or commandCtx; exits as
 * ExitWithError(ExitError, err) on failure. */
static void auth_call(struct client *c, const char *method, const struct pb_msgdesc *req_desc,
                      const void *req, const struct pb_msgdesc *resp_desc, void *resp,
                      int64_t deadline)
{
    char path[96];
    snprintf(path, sizeof path, "/etcdserverpb.Auth/%s", method);
    struct client_err e;
    if (client_unary(c, path, req_desc, req, resp_desc, resp, &ctl_arena, deadline, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
}

/* The printers for a response that is only a header: simple prints line,
 * the others the header (json, fields) or the whole message (protobuf). */
static void print_header_resp(const char *line, const struct api_header *h,
                              const struct pb_msgdesc *d, const void *resp)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        fputs(line, stdout);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", h);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(h);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(d, resp);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

static char *line_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *line_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = mem_arena_alloc(&ctl_arena, (size_t)n + 1);
    if (!s)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- auth enable / disable ---- */

static int auth_enable_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "auth enable command does not accept any arguments");
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct client_err e;
    for (;;) {
        struct api_auth_enable_req req = {0};
        struct api_auth_enable_resp r;
        if (client_unary(c, "/etcdserverpb.Auth/AuthEnable", &api_auth_enable_req_desc, &req,
                         &api_auth_enable_resp_desc, &r, &ctl_arena, dl, &e) == 0)
            break;
        /* etcd wants a root role first: add it, grant it to root, retry */
        if (e.code == CLIENT_DEADLINE ||
            strcmp(ctl_err_text(&e), "etcdserver: root user does not have root role"))
            ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
        ctl_rpc_warn(c, &e);
        struct api_auth_role_add_req ra = {.name = bstr("root")};
        struct api_auth_role_add_resp rar;
        auth_call(c, "RoleAdd", &api_auth_role_add_req_desc, &ra, &api_auth_role_add_resp_desc,
                  &rar, dl);
        struct api_auth_user_grant_role_req gr = {.user = bstr("root"), .role = bstr("root")};
        struct api_auth_user_grant_role_resp grr;
        auth_call(c, "UserGrantRole", &api_auth_user_grant_role_req_desc, &gr,
                  &api_auth_user_grant_role_resp_desc, &grr, dl);
    }
    printf("Authentication Enabled\n");
    return 0;
}

static int auth_disable_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "auth disable command does not accept any arguments");
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_disable_req req = {0};
    struct api_auth_disable_resp r;
    auth_call(c, "AuthDisable", &api_auth_disable_req_desc, &req, &api_auth_disable_resp_desc, &r,
              dl);
    printf("Authentication Disabled\n");
    return 0;
}

/* ---- reading passwords ---- */

/* speakeasy's echo switch: /bin/stty run on our stdin/stdout/stderr.
 * 0, or -1 with Go's error in err. */
static int run_stty(const char *arg, char *err, size_t cap)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        snprintf(err, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(ep[0]);
        close(ep[1]);
        snprintf(err, cap, "fork/exec /bin/stty: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        char *const args[] = {"stty", (char *)arg, NULL};
        execv("/bin/stty", args);
        int e = errno;
        (void)!write(ep[1], &e, sizeof e);
        _exit(127);
    }
    close(ep[1]);
    int e = 0;
    ssize_t got;
    do
        got = read(ep[0], &e, sizeof e);
    while (got < 0 && errno == EINTR);
    close(ep[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof e) {
        snprintf(err, cap, "fork/exec /bin/stty: %s",
                 e == ENOENT ? "no such file or directory" : strerror(e));
        return -1;
    }
    return 0;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* speakeasy.Ask: the prompt on stdout, echo off, one line from stdin
 * (trimmed), echo on, a newline. */
static char *ask(const char *prompt)
{
    fputs(prompt, stdout);
    char err[256];
    if (run_stty("-echo", err, sizeof err) < 0) {
        fputc('\n', stdout);
        ctl_fail(CTL_EXIT_BAD_ARGS,
                 "failed to ask password: failed turning off console echo for password entry:\n\t%s",
                 err);
    }
    struct mem_buf b = {0};
    bool failed = false;
    for (;;) {
        char ch;
        ssize_t r = read(0, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            failed = true;
            snprintf(err, sizeof err, "failed during password entry: read /dev/stdin: %s",
                     strerror(errno));
            break;
        }
        if (r == 0 || ch == '\n')
            break;
        if (mem_buf_putc(&b, (uint8_t)ch) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    char tmp[8];
    (void)run_stty("echo", tmp, sizeof tmp);
    fputc('\n', stdout);
    if (failed) {
        mem_buf_free(&b);
        ctl_fail(CTL_EXIT_BAD_ARGS, "failed to ask password: %s", err);
    }
    size_t s = 0, e = b.len;
    while (s < e && is_space((char)b.data[s]))
        s++;
    while (e > s && is_space((char)b.data[e - 1]))
        e--;
    char *out = mem_arena_alloc(&ctl_arena, e - s + 1);
    if (!out)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    if (e > s)
        memcpy(out, b.data + s, e - s);
    out[e - s] = 0;
    mem_buf_free(&b);
    return out;
}

/* readPasswordInteractive */
static char *read_password_interactive(const char *name)
{
    char *p1 = ask(line_printf("Password of %s: ", name));
    if (!p1[0])
        ctl_fail(CTL_EXIT_BAD_ARGS, "empty password");
    char *p2 = ask(line_printf("Type password of %s again for confirmation: ", name));
    if (strcmp(p1, p2))
        ctl_fail(CTL_EXIT_BAD_ARGS, "given passwords are different");
    return p1;
}

/* fmt.Scanf("%s", &password) on stdin: one space-separated word of the
 * first line; "" when the line (or the input) is empty. */
static char *scan_word(void)
{
    struct mem_buf b = {0};
    char ch;
    ssize_t r;
    for (;;) { /* spaces, but not the newline, are skipped */
        r = read(0, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            goto out;
        if (ch == '\r') {
            r = read(0, &ch, 1);
            if (r <= 0 || ch == '\n')
                goto out;
        }
        if (!(ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f' || ch == '\r'))
            break;
    }
    for (;;) {
        if (mem_buf_putc(&b, (uint8_t)ch) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        do
            r = read(0, &ch, 1);
        while (r < 0 && errno == EINTR);
        if (r <= 0 || is_space(ch))
            break;
    }
out:;
    char *s = mem_arena_alloc(&ctl_arena, b.len + 1);
    if (!s)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    if (b.len)
        memcpy(s, b.data, b.len);
    s[b.len] = 0;
    mem_buf_free(&b);
    return s;
}

/* ---- user ---- */

static int user_add_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "user add command requires user name as its argument");
    const char *user = argv[0];
    const char *password = "";
    struct api_user_add_options opts = {.no_password = false};
    if (!user_no_password) {
        if (user_new_password[0]) {
            password = user_new_password;
        } else {
            char *colon = strchr(argv[0], ':');
            if (!colon) {
                if (!user_interactive)
                    password = scan_word();
                else
                    password = read_password_interactive(argv[0]);
            } else {
                size_t ul = (size_t)(colon - argv[0]);
                char *u = mem_arena_alloc(&ctl_arena, ul + 1);
                if (!u)
                    ctl_fail(CTL_EXIT_ERROR, "out of memory");
                memcpy(u, argv[0], ul);
                u[ul] = 0;
                user = u;
                password = colon + 1;
                if (!ul)
                    ctl_fail(CTL_EXIT_BAD_ARGS, "empty user name is not allowed");
            }
        }
    } else {
        opts.no_password = true;
    }
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_add_req req = {
        .name = bstr(user), .password = bstr(password), .options = &opts,
    };
    struct api_auth_user_add_resp r;
    auth_call(c, "UserAdd", &api_auth_user_add_req_desc, &req, &api_auth_user_add_resp_desc, &r, 0);
    print_header_resp(line_printf("User %s created\n", user), r.header,
                      &api_auth_user_add_resp_desc, &r);
    return 0;
}

static int user_delete_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "user delete command requires user name as its argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_delete_req req = {.name = bstr(argv[0])};
    struct api_auth_user_delete_resp r;
    auth_call(c, "UserDelete", &api_auth_user_delete_req_desc, &req,
              &api_auth_user_delete_resp_desc, &r, 0);
    print_header_resp(line_printf("User %s deleted\n", argv[0]), r.header,
                      &api_auth_user_delete_resp_desc, &r);
    return 0;
}

/* display.RoleGet */
static void print_role_get(const char *role, const struct api_auth_role_get_resp *r);

static int user_get_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "user get command requires user name as its argument");
    const char *name = argv[0];
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_get_req req = {.name = bstr(name)};
    struct api_auth_user_get_resp r;
    auth_call(c, "UserGet", &api_auth_user_get_req_desc, &req, &api_auth_user_get_resp_desc, &r,
              0);
    if (user_detail) {
        printf("User: %s\n", name);
        for (size_t i = 0; i < r.n_roles; i++) {
            printf("\n");
            char *role = mem_arena_alloc(&ctl_arena, r.roles[i].len + 1);
            if (!role)
                ctl_fail(CTL_EXIT_ERROR, "out of memory");
            memcpy(role, r.roles[i].p, r.roles[i].len);
            role[r.roles[i].len] = 0;
            struct api_auth_role_get_req rq = {.role = r.roles[i]};
            struct api_auth_role_get_resp rr;
            auth_call(c, "RoleGet", &api_auth_role_get_req_desc, &rq,
                      &api_auth_role_get_resp_desc, &rr, 0);
            print_role_get(role, &rr);
        }
        return 0;
    }
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("User: %s\nRoles:", name);
        for (size_t i = 0; i < r.n_roles; i++) {
            fputc(' ', stdout);
            ctl_write(r.roles[i].p, r.roles[i].len);
        }
        fputc('\n', stdout);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r.header);
        if (r.n_roles) {
            cj_open(&j, "roles", '[');
            for (size_t i = 0; i < r.n_roles; i++)
                cj_str(&j, NULL, r.roles[i].p, r.roles[i].len, false);
            cj_close(&j, ']');
        }
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_auth_user_get_resp_desc, &r);
        break;
    case CTL_FMT_FIELDS:
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

/* user list and role list in the simple and json formats: a name per line,
 * or the header and the names under key (omitted when empty). */
static void print_names(const struct api_header *h, const struct pb_bytes *v, size_t n, const char *key)
{
    if (ctl_g.fmt == CTL_FMT_SIMPLE) {
        for (size_t i = 0; i < n; i++) {
            ctl_write(v[i].p, v[i].len);
            fputc('\n', stdout);
        }
        return;
    }
    struct ctl_json j = {0};
    cj_open(&j, NULL, '{');
    cj_header(&j, "header", h);
    if (n) {
        cj_open(&j, key, '[');
        for (size_t i = 0; i < n; i++)
            cj_str(&j, NULL, v[i].p, v[i].len, false);
        cj_close(&j, ']');
    }
    cj_close(&j, '}');
    cj_print(&j);
}

static int user_list_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "user list command requires no arguments");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_list_req req = {0};
    struct api_auth_user_list_resp r;
    auth_call(c, "UserList", &api_auth_user_list_req_desc, &req, &api_auth_user_list_resp_desc,
              &r, 0);
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
    case CTL_FMT_JSON:
        print_names(r.header, r.users, r.n_users, "users");
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_auth_user_list_resp_desc, &r);
        break;
    case CTL_FMT_FIELDS:
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

static int user_passwd_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "user passwd command requires user name as its argument");
    const char *password =
        passwd_interactive ? read_password_interactive(argv[0]) : scan_word();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_change_password_req req = {
        .name = bstr(argv[0]), .password = bstr(password),
    };
    struct api_auth_user_change_password_resp r;
    auth_call(c, "UserChangePassword", &api_auth_user_change_password_req_desc, &req,
              &api_auth_user_change_password_resp_desc, &r, 0);
    print_header_resp("Password updated\n", r.header, &api_auth_user_change_password_resp_desc,
                      &r);
    return 0;
}

static int user_grant_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 2)
        ctl_fail(CTL_EXIT_BAD_ARGS,
                 "user grant command requires user name and role name as its argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_grant_role_req req = {.user = bstr(argv[0]), .role = bstr(argv[1])};
    struct api_auth_user_grant_role_resp r;
    auth_call(c, "UserGrantRole", &api_auth_user_grant_role_req_desc, &req,
              &api_auth_user_grant_role_resp_desc, &r, 0);
    print_header_resp(line_printf("Role %s is granted to user %s\n", argv[1], argv[0]), r.header,
                      &api_auth_user_grant_role_resp_desc, &r);
    return 0;
}

static int user_revoke_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 2)
        ctl_fail(CTL_EXIT_BAD_ARGS,
                 "user revoke-role requires user name and role name as its argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_user_revoke_role_req req = {.name = bstr(argv[0]), .role = bstr(argv[1])};
    struct api_auth_user_revoke_role_resp r;
    auth_call(c, "UserRevokeRole", &api_auth_user_revoke_role_req_desc, &req,
              &api_auth_user_revoke_role_resp_desc, &r, 0);
    print_header_resp(line_printf("Role %s is revoked from user %s\n", argv[1], argv[0]),
                      r.header, &api_auth_user_revoke_role_resp_desc, &r);
    return 0;
}

/* ---- role ---- */

static int role_add_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "role add command requires role name as its argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_role_add_req req = {.name = bstr(argv[0])};
    struct api_auth_role_add_resp r;
    auth_call(c, "RoleAdd", &api_auth_role_add_req_desc, &req, &api_auth_role_add_resp_desc, &r,
              0);
    print_header_resp(line_printf("Role %s created\n", argv[0]), r.header,
                      &api_auth_role_add_resp_desc, &r);
    return 0;
}

static int role_delete_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "role delete command requires role name as its argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_role_delete_req req = {.role = bstr(argv[0])};
    struct api_auth_role_delete_resp r;
    auth_call(c, "RoleDelete", &api_auth_role_delete_req_desc, &req,
              &api_auth_role_delete_resp_desc, &r, 0);
    print_header_resp(line_printf("Role %s deleted\n", argv[0]), r.header,
                      &api_auth_role_delete_resp_desc, &r);
    return 0;
}

static const char *perm_type_name(int32_t t)
{
    switch (t) {
    case API_PERM_READ:
        return "READ";
    case API_PERM_WRITE:
        return "WRITE";
    case API_PERM_READWRITE:
        return "READWRITE";
    default:
        return NULL;
    }
}

/* the simple printer's range: "[key, end)", "[key, <open ended>" and
 * " (prefix key)" when end is key's prefix end */
static void print_range(const struct api_permission *p)
{
    static const uint8_t zero = 0;
    fputs("\t[", stdout);
    ctl_write(p->key.p, p->key.len);
    if (!(p->range_end.len == 1 && p->range_end.p[0] == 0)) {
        fputs(", ", stdout);
        ctl_write(p->range_end.p, p->range_end.len);
        fputc(')', stdout);
    } else {
        fputs(", <open ended>", stdout);
    }
    /* clientv3.GetPrefixRangeEnd(key) == end */
    size_t n = p->key.len;
    while (n > 0 && p->key.p[n - 1] == 0xff)
        n--;
    bool prefix;
    if (n == 0)
        prefix = p->range_end.len == 1 && p->range_end.p[0] == zero;
    else
        prefix = p->range_end.len == n && !memcmp(p->range_end.p, p->key.p, n - 1) &&
                 p->range_end.p[n - 1] == (uint8_t)(p->key.p[n - 1] + 1);
    if (prefix) {
        fputs(" (prefix ", stdout);
        ctl_write(p->key.p, p->key.len);
        fputc(')', stdout);
    }
    fputc('\n', stdout);
}

static void print_role_get(const char *role, const struct api_auth_role_get_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("Role %s\nKV Read:\n", role);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1)
                printf("KV Write:\n");
            int32_t want = pass == 0 ? API_PERM_READ : API_PERM_WRITE;
            for (size_t i = 0; i < r->n_perm; i++) {
                const struct api_permission *p = &r->perm[i];
                if (p->permType != want && p->permType != API_PERM_READWRITE)
                    continue;
                if (p->range_end.len == 0) {
                    fputc('\t', stdout);
                    ctl_write(p->key.p, p->key.len);
                    fputc('\n', stdout);
                } else {
                    print_range(p);
                }
            }
        }
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r->header);
        if (r->n_perm) {
            cj_open(&j, "perm", '[');
            for (size_t i = 0; i < r->n_perm; i++) {
                const struct api_permission *p = &r->perm[i];
                cj_open(&j, NULL, '{');
                cj_i64(&j, "permType", p->permType, true);
                cj_b64(&j, "key", p->key.p, p->key.len, true);
                cj_b64(&j, "range_end", p->range_end.p, p->range_end.len, true);
                cj_close(&j, '}');
            }
            cj_close(&j, ']');
        }
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r->header);
        for (size_t i = 0; i < r->n_perm; i++) {
            const struct api_permission *p = &r->perm[i];
            const char *name = perm_type_name(p->permType);
            if (name)
                printf("\"PermType\" :  %s\n", name);
            else
                printf("\"PermType\" :  %d\n", (int)p->permType);
            fputs("\"Key\" : ", stdout);
            ctl_print_quoted(p->key.p, p->key.len);
            fputs("\n\"RangeEnd\" : ", stdout);
            ctl_print_quoted(p->range_end.p, p->range_end.len);
            fputc('\n', stdout);
        }
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_auth_role_get_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

static int role_get_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "role get command requires role name as its argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_role_get_req req = {.role = bstr(argv[0])};
    struct api_auth_role_get_resp r;
    auth_call(c, "RoleGet", &api_auth_role_get_req_desc, &req, &api_auth_role_get_resp_desc, &r,
              0);
    print_role_get(argv[0], &r);
    return 0;
}

static int role_list_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "role list command requires no arguments");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_role_list_req req = {0};
    struct api_auth_role_list_resp r;
    auth_call(c, "RoleList", &api_auth_role_list_req_desc, &req, &api_auth_role_list_resp_desc,
              &r, 0);
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
    case CTL_FMT_JSON:
        print_names(r.header, r.roles, r.n_roles, "roles");
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r.header);
        fputs("\"Roles\" :", stdout);
        for (size_t i = 0; i < r.n_roles; i++) {
            fputc(' ', stdout);
            ctl_print_quoted(r.roles[i].p, r.roles[i].len);
        }
        fputc('\n', stdout);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_auth_role_list_resp_desc, &r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

/* clientv3.GetPrefixRangeEnd as a string */
static char *prefix_end_str(const char *key)
{
    size_t n = strlen(key);
    char *end = mem_arena_alloc(&ctl_arena, n + 2);
    if (!end)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    memcpy(end, key, n + 1);
    for (size_t i = n; i-- > 0;) {
        if ((uint8_t)end[i] < 0xff) {
            end[i] = (char)((uint8_t)end[i] + 1);
            end[i + 1] = 0;
            return end;
        }
    }
    return NULL; /* "\x00": the caller's open end */
}

/* permRange: the key and range end a grant/revoke names (as byte strings;
 * "\x00" spelled {0} with length 1). */
static void perm_range(int argc, char **argv, struct pb_bytes *key, struct pb_bytes *end)
{
    static const uint8_t nul = 0;
    const struct pb_bytes zero = {&nul, 1};
    *end = (struct pb_bytes){(const uint8_t *)"", 0};
    if (!argv[0][0]) {
        if (perm_prefix && perm_from_key)
            ctl_fail(CTL_EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive");
        *key = zero;
        if (perm_prefix || perm_from_key)
            *end = zero;
        return;
    }
    *key = bstr(argv[0]);
    if (argc == 1) {
        if (perm_prefix) {
            if (perm_from_key)
                ctl_fail(CTL_EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive");
            char *pe = prefix_end_str(argv[0]);
            *end = pe ? bstr(pe) : zero;
            return;
        }
        if (perm_from_key)
            *end = zero;
        return;
    }
    if (perm_prefix)
        ctl_fail(CTL_EXIT_BAD_ARGS, "unexpected endkey argument with --prefix flag");
    if (perm_from_key)
        ctl_fail(CTL_EXIT_BAD_ARGS, "unexpected endkey argument with --from-key flag");
    *end = bstr(argv[1]);
}

static int role_grant_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc < 3)
        ctl_fail(CTL_EXIT_BAD_ARGS, "role grant command requires role name, permission type, "
                                    "and key [endkey] as its argument");
    /* StrToPermissionType: the name in upper case */
    char up[64];
    size_t n = strlen(argv[1]);
    int32_t type = -1;
    if (n < sizeof up) {
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)(argv[1][i] >= 'a' && argv[1][i] <= 'z' ? argv[1][i] - 32 : argv[1][i]);
        for (int32_t t = 0; t < 3; t++)
            if (!strcmp(up, perm_type_name(t)))
                type = t;
    }
    if (type < 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "invalid permission type: %s", argv[1]);
    struct api_permission perm = {.permType = type};
    perm_range(argc - 2, argv + 2, &perm.key, &perm.range_end);
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_role_grant_permission_req req = {.name = bstr(argv[0]), .perm = &perm};
    struct api_auth_role_grant_permission_resp r;
    auth_call(c, "RoleGrantPermission", &api_auth_role_grant_permission_req_desc, &req,
              &api_auth_role_grant_permission_resp_desc, &r, 0);
    print_header_resp(line_printf("Role %s updated\n", argv[0]), r.header,
                      &api_auth_role_grant_permission_resp_desc, &r);
    return 0;
}

static int role_revoke_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc < 2)
        ctl_fail(CTL_EXIT_BAD_ARGS, "role revoke-permission command requires role name and key "
                                    "[endkey] as its argument");
    struct pb_bytes key, end;
    perm_range(argc - 1, argv + 1, &key, &end);
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_auth_role_revoke_permission_req req = {
        .role = bstr(argv[0]), .key = key, .range_end = end,
    };
    struct api_auth_role_revoke_permission_resp r;
    auth_call(c, "RoleRevokePermission", &api_auth_role_revoke_permission_req_desc, &req,
              &api_auth_role_revoke_permission_resp_desc, &r, 0);
    /* the simple printer names argv[1] (not the "\x00" an empty key became) */
    struct mem_buf b = {0};
    bool ok;
    if (end.len == 0)
        ok = mem_buf_printf(&b, "Permission of key %s is revoked from role %s\n", argv[1],
                            argv[0]) == 0;
    else if (!(end.len == 1 && end.p[0] == 0))
        ok = mem_buf_printf(&b, "Permission of range [%s, ", argv[1]) == 0 &&
             mem_buf_append(&b, end.p, end.len) == 0 &&
             mem_buf_printf(&b, ") is revoked from role %s\n", argv[0]) == 0;
    else
        ok = mem_buf_printf(&b, "Permission of range [%s, <open ended> is revoked from role %s\n",
                            argv[1], argv[0]) == 0;
    if (!ok || mem_buf_putc(&b, 0) < 0)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    print_header_resp((const char *)b.data, r.header,
                      &api_auth_role_revoke_permission_resp_desc, &r);
    mem_buf_free(&b);
    return 0;
}
