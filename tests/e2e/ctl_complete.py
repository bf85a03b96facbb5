"""ctl_complete.py - shell completion against Debian's etcdctl 3.4.23.

`etcdctl __complete WORD...` (and __completeNoDesc) is compared byte for
byte, stdout, stderr and exit code, over many command lines: every command
path, flags, flag values, "--", unknown commands and flags, the help
command, the hidden command itself.  The help texts and usage errors of
`completion` and its shells are compared the same way.  Then real shells run
the scripts: bash (the function `complete -p etcdctl` names, called with
COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set as bash sets them, reading
COMPREPLY), fish (`complete -C`) and an interactive zsh on a pty, each with
our script and Debian's, each script with our binary and with Debian's.
Our bash script must work without the bash-completion package, Debian's
needs it (`make deps` installs it); fish and zsh are not dependencies of
the build, so their tests say they are skipped where the shell is missing.
Nothing here needs a server.
"""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from ctl_golden import our_ctl_dir
from harness import ETCDCTL, check, ctl_env, eq, test

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def run_ctl(ctl, args, env=None):
    e = ctl_env()
    e.update(env or {})
    r = subprocess.run([ctl] + list(args), capture_output=True, env=e, timeout=60)
    return r.returncode, r.stdout, r.stderr


def compare_runs(ours, vectors, label, env=None):
    """Runs each argument vector with both binaries (in parallel threads);
    raises listing the first differences."""
    results = {}

    def side(name, ctl):
        results[name] = [run_ctl(ctl, v, env) for v in vectors]

    threads = [threading.Thread(target=side, args=("real", ETCDCTL)),
               threading.Thread(target=side, args=("ours", ours))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(len(results.get("ours", [])), len(vectors), label + ": vectors run")
    bad = []
    for v, got, want in zip(vectors, results["ours"], results["real"]):
        if got != want:
            bad.append("%s: etcdctl %r\n  ours: %r\n  real: %r" % (label, v, got, want))
    if bad:
        raise AssertionError("%d of %d differ:\n%s" % (len(bad), len(vectors), "\n".join(bad[:12])))
    return results["real"]


def cmd_paths():
    """Every command path etcdctl lists in its help, groups included."""
    out = subprocess.run([ETCDCTL, "--help"], capture_output=True, env=ctl_env()).stdout.decode()
    paths = set()
    for line in out.split("COMMANDS:")[1].split("OPTIONS:")[0].splitlines():
        if line.startswith("\t"):
            words = line.strip().split("\t")[0].split()
            for i in range(1, len(words) + 1):
                paths.add(tuple(words[:i]))
    return sorted(paths)


# command lines whose last word is being completed
VECTORS = [
    [""], ["ge"], ["g"], ["c"], ["comp"], ["x"], ["_"], ["__"], ["-"], ["--"], ["---"],
    ["get", ""], ["get", "-"], ["get", "--"], ["get", "--pr"], ["get", "--prefix", "-"],
    ["get", "--prefix", ""], ["get", "foo", ""], ["get", "foo", "-"], ["get", "foo", "bar", "--k"],
    ["get", "-w", ""], ["get", "-w"], ["get", "-w="], ["get", "-w=j"], ["get", "--write-out="],
    ["get", "--write-out=js"], ["get", "-w", "json", "-"], ["get", "-wjson", "-"],
    ["get", "--endpoints", "a", "--e"], ["get", "--endpoints=a", "-"],
    ["get", "--endpoints", "a", "--endpoints", "b", "--e"],
    ["get", "--insecure-transport=false", "--ins"], ["get", "--foo", ""], ["get", "--foo="],
    ["get", "--foo", "-"], ["get", "a-b", ""], ["get", "--limit", "x", ""], ["get", "--limit=x", ""],
    ["get", "--limit", ""], ["get", "--limit="], ["get", "--rev=", ""], ["get", "--prefix=maybe", ""],
    ["get", "--prefix="], ["get", "--prefix=t"], ["get", "--", ""], ["get", "--", "-"],
    ["get", "--", "--pr"], ["get", "-w", "json", "--", "-w", ""], ["get", "--="], ["get", "--w="],
    ["get", "---"], ["get", "-hw", ""], ["get", "-wh", ""], ["get", "-ww"], ["get", "-d"],
    ["get", "-d", ""], ["get", "-x="], ["get", "-=", ""], ["get", "-", ""], ["get", "--help", "-"],
    ["get", "-h", ""], ["get", "--help=false", "-"], ["lease", ""], ["lease", "g"], ["lease", "k"],
    ["lease", "--", ""], ["lease", "--", "--x="], ["lease", "grant", ""], ["lease", "grant", "-"],
    ["lease", "foo", ""], ["lease", "keep-alive", "--once", ""], ["member", "--hex", ""],
    ["member", "list", "-w", ""], ["member", "add", "--peer-urls="], ["endpoint", "--cluster", ""],
    ["endpoint", "--cluster", "-"], ["endpoint", "health", "-"], ["endpoint", "hashkv", "--c"],
    ["endpoint", "-"], ["defrag", "-"], ["defrag", "--data-dir", "x", ""], ["defrag", "--cluster", ""],
    ["help", ""], ["help", "l"], ["help", "lease", ""], ["help", "lease", "g"], ["help", "foo", ""],
    ["help", "get", ""], ["help", "-"], ["help", "--", ""], ["help", "completion", ""],
    ["help", "--debug", "lease", ""], ["help", "__complete", ""], ["help", "_"],
    ["completion", ""], ["completion", "b"], ["completion", "bash", ""], ["completion", "bash", "-"],
    ["completion", "bash", "--no-descriptions", ""], ["completion", "foo", ""], ["completion", "-"],
    ["completion", "zsh", "--no-descriptions", "-"], ["__complete", ""], ["__complete", "-"],
    ["__complete", "get", ""], ["__complete", "-h", "x", ""], ["__completeNoDesc", "-"],
    ["--help", "foo", "get", ""], ["--help", ""], ["-h", "-"], ["--debug", "get", "--pr"],
    ["--endpoints", "x", "get", "--pr"], ["-w", "json", "le"], ["--", ""], ["--="], ["-", ""],
    [" ", ""], ["txn", "-i", ""], ["put", "--lease"], ["put", "--lease", ""], ["put", "--lease="],
    ["put", "k", "v", "--ig"], ["snapshot", ""], ["snapshot", "save", "-"], ["check", ""],
    ["check", "perf", "--l"], ["check", "perf", "--load", ""], ["user", ""], ["role", ""],
    ["role", "grant-permission", "-"], ["auth", ""], ["alarm", ""], ["watch", "-i", "-"],
    ["watch", "k", "--", "echo", "-"], ["lock", "-"], ["elect", "-"], ["move-leader", "-"],
    ["make-mirror", "-"], ["migrate", "-"], ["version", ""], ["version", "-"], ["ver"],
    ["get", "--consistency", "s", "--"], ["get", "--sort-by=", "x"],
]


def all_vectors():
    vs = [list(v) for v in VECTORS]
    for p in cmd_paths():
        p = list(p)
        vs += [p + [""], p + ["-"], p[:-1] + [p[-1][:2]]]
    return [["__complete"] + v for v in vs] + [["__completeNoDesc"] + v for v in vs[::6]]


def real_ctl_dir(d):
    """A directory under d where `etcdctl` is Debian's (for PATH)."""
    real_bin = os.path.join(d, "real")
    os.mkdir(real_bin)
    os.symlink(ETCDCTL, os.path.join(real_bin, "etcdctl"))
    return real_bin


@test
def ctl_complete_protocol_matches_etcdctl():
    d = our_ctl_dir()
    try:
        ours = os.path.join(d, "etcdctl")
        vectors = all_vectors()
        want = compare_runs(ours, vectors, "__complete")
        check(len(vectors) > 300, "too few vectors")
        check(sum(1 for _, out, _ in want if out.count(b"\n") > 3) > 50, "too few with candidates")
        check(sum(1 for _, _, err in want if b"[Error]" in err) > 8, "too few errors")
        # other ways in: prefix of the hidden name, flags before it, the alias
        compare_runs(ours, [["__comp", "lease", ""], ["_", "get", "--pr"], ["__completeN", "-"],
                            ["--debug", "__complete", "get", ""], ["-w", "json", "__complete", "-"],
                            ["--endpoints", "__complete", "__complete", ""],
                            ["__complete", "--help"], ["__complete", "-h"]], "entry")
        # cobra's error lines also go to the scripts' debug log
        logs = {}
        for name, ctl in (("real", ETCDCTL), ("ours", ours)):
            log = os.path.join(d, name + ".log")
            for v in (["foo", ""], ["get", "--foo="], ["get", "--limit=x", ""], ["lease", ""]):
                run_ctl(ctl, ["__complete"] + v, {"BASH_COMP_DEBUG_FILE": log})
            with open(log, "rb") as f:
                logs[name] = f.read()
        eq(logs["ours"], logs["real"], "BASH_COMP_DEBUG_FILE")
        check(logs["real"].count(b"[Error]") == 3, "errors logged")
    finally:
        shutil.rmtree(d, ignore_errors=True)


HELP_VECTORS = [["completion"], ["completion", "--help"], ["completion", "-h"], ["help", "completion"],
                ["completion", "foo"], ["completion", "--nosuch"], ["comp"], ["compl", "bash", "--help"],
                ["__complete"], ["__comp"], ["__completeNoDesc"], ["help", "__complete"], ["__x"],
                ["help"], ["--help"]]
for _shell in ("bash", "zsh", "fish", "powershell"):
    HELP_VECTORS += [["completion", _shell, "--help"], ["help", "completion", _shell],
                     ["completion", _shell, "foo"], ["completion", _shell, "--no-descriptions=x"],
                     ["completion", _shell, "--nosuch"], ["completion", _shell, "-h", "x"]]


@test
def ctl_complete_help_texts_match_etcdctl():
    d = our_ctl_dir()
    try:
        want = compare_runs(os.path.join(d, "etcdctl"), HELP_VECTORS, "help")
        check(sum(1 for _, out, _ in want if b"DESCRIPTION:" in out) > 15, "too few help texts")
        check(sum(1 for rc, _, _ in want if rc == 1) > 12, "too few usage errors")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- bash ----

def bash_words(line):
    """COMP_WORDS as bash makes them from line: words split at blanks
    outside quotes, runs of = and : (COMP_WORDBREAKS) words of their own."""
    words, cur, quote, i = [], "", None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 1
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in " \t":
            if cur:
                words.append(cur)
            cur = ""
        elif ch in "=:":
            if cur:
                words.append(cur)
            j = i
            while j < len(line) and line[j] in "=:":
                j += 1
            words.append(line[i:j])
            cur, i = "", j
            continue
        else:
            cur += ch
        i += 1
    if cur or line[-1:] in (" ", "\t"):
        words.append(cur)
    return words


BASH_DRIVER = r"""
[[ -n $T_PRELOAD ]] && source "$T_PRELOAD"
source "$T_SCRIPT"
compopt() { printf 'compopt %s\n' "$*" >>"$T_LOG"; }
COMP_LINE=$T_LINE
COMP_POINT=$T_POINT
mapfile -t -d $'\x1f' COMP_WORDS < <(printf '%s' "$T_WORDS")
COMP_CWORD=$T_CWORD
COMP_TYPE=${T_TYPE:-9}
COLUMNS=100
fn=$(complete -p etcdctl | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
"$fn" etcdctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(script, bindir, line, point=None, preload=None, comp_type=9):
    """Runs the completion function script registers for etcdctl; returns
    (COMPREPLY, the compopt calls it made)."""
    point = len(line) if point is None else point
    words = bash_words(line[:point])
    whole = bash_words(line)  # bash keeps the rest of the line in COMP_WORDS
    cword = len(words) - 1
    if cword < len(whole) and whole[cword].startswith(words[cword]):
        words[cword] = whole[cword]
    words += whole[len(words):]
    with tempfile.NamedTemporaryFile("r", prefix="compopt.") as log:
        env = ctl_env()
        env.update(PATH=bindir + ":" + env.get("PATH", "/usr/bin:/bin"), T_SCRIPT=script, T_LINE=line,
                   T_POINT=str(point), T_WORDS="".join(w + "\x1f" for w in words),
                   T_CWORD=str(cword), T_TYPE=str(comp_type), T_PRELOAD=preload or "", T_LOG=log.name)
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER], capture_output=True,
                           env=env, timeout=60)
        check(r.returncode == 0, "bash failed: %r" % r.stderr)
        reply = r.stdout.decode().split("\n")[:-1]
        return (reply if reply != [""] else []), log.read().splitlines()


def names(reply):
    """The candidates without the descriptions either script adds."""
    return [re.split(r"\s{2,}(?:--|\()", r)[0] for r in reply]


LEASE_SUBS = ["grant", "keep-alive", "list", "revoke", "timetolive"]

# line (| marks the cursor when not at the end) -> the candidates' names
BASH_CASES = [
    ("etcdctl ge", ["get"]),
    ("etcdctl get --pr", ["--prefix", "--print-value-only"]),
    ("etcdctl lease ", LEASE_SUBS),
    ("etcdctl lease k", ["keep-alive"]),
    ("etcdctl help lease t", ["timetolive"]),
    ("etcdctl completion ", ["bash", "fish", "powershell", "zsh"]),
    ("etcdctl mem", ["member"]),
    ("etcdctl member l", ["list"]),
    ("etcdctl get -w", ["-w"]),
    ("etcdctl get --write-out=", []),
    ("etcdctl get --write-out=js", []),
    ("etcdctl get foo ", []),
    ("etcdctl get --hex --keys", ["--keys-only"]),
    ("etcdctl --endpoints=http://127.0.0.1:2379 ge", ["get"]),
    ("etcdctl --endpoints http://127.0.0.1:2379 lease re", ["revoke"]),
    ('etcdctl get "a b" --pr', ["--prefix", "--print-value-only"]),
    ("etcdctl get a\\ b --from", ["--from-key"]),
    ("etcdctl ge| foo", ["get"]),
    ("etcdctl lease k|eep", ["keep-alive"]),
    ("etcdctl nosuch ", []),
    ("etcdctl x", []),
    ("etcdctl endpoint --cluster h", ["hashkv", "health"]),
]


def split_cursor(line):
    if "|" in line:
        i = line.index("|")
        return line[:i] + line[i + 1:], i
    return line, None


@test
def ctl_complete_bash_scripts_both_ways():
    check(os.path.exists(BASH_COMPLETION), "bash-completion is not installed (make deps)")
    d = our_ctl_dir()
    try:
        ours_bin = d
        real_bin = real_ctl_dir(d)
        scripts = {}
        for who, binary in (("ours", os.path.join(d, "etcdctl")), ("real", ETCDCTL)):
            for flag in ("", "--no-descriptions"):
                rc, out, err = run_ctl(binary, ["completion", "bash"] + ([flag] if flag else []))
                eq(rc, 0, "completion bash %s" % flag)
                path = os.path.join(d, "%s%s.bash" % (who, flag))
                with open(path, "wb") as f:
                    f.write(out)
                scripts[who + flag] = path
        check(b"__completeNoDesc" in open(scripts["ours--no-descriptions"], "rb").read(), "no-desc script")
        check(open(scripts["ours"], "rb").read() != open(scripts["real"], "rb").read(), "our own script")

        bad = []
        for line, want in BASH_CASES:
            text, point = split_cursor(line)
            got = {}
            # ours needs nothing else; Debian's needs bash-completion's
            # _get_comp_words_by_ref
            for script, preload in (("ours", None), ("real", BASH_COMPLETION)):
                for binname, bindir in (("ours", ours_bin), ("real", real_bin)):
                    reply, _ = bash_complete(scripts[script], bindir, text, point, preload)
                    got[script, binname] = reply
            if got["ours", "ours"] != got["ours", "real"]:
                bad.append("our script, our binary vs Debian's: %r\n  %r\n  %r" %
                           (line, got["ours", "ours"], got["ours", "real"]))
            if got["real", "ours"] != got["real", "real"]:
                bad.append("Debian's script, our binary vs Debian's: %r\n  %r\n  %r" %
                           (line, got["real", "ours"], got["real", "real"]))
            for k, reply in got.items():
                if sorted(names(reply)) != sorted(want):
                    bad.append("%s script, %s binary: %r gives %r, want %r" % (k[0], k[1], line, reply, want))
        # descriptions: shown for several candidates, never inserted
        reply, _ = bash_complete(scripts["ours"], ours_bin, "etcdctl lease ")
        check(all(" -- " in r for r in reply), "descriptions listed: %r" % reply)
        reply, _ = bash_complete(scripts["ours"], ours_bin, "etcdctl lease ", comp_type=37)
        eq(reply, LEASE_SUBS, "menu-complete inserts bare names")
        reply, _ = bash_complete(scripts["ours--no-descriptions"], ours_bin, "etcdctl lease ")
        eq(reply, LEASE_SUBS, "--no-descriptions")
        # directive 4 turns off the file name fallback, 0 keeps it
        _, opts = bash_complete(scripts["ours"], ours_bin, "etcdctl lease x")
        eq(opts, ["compopt +o default"], "no file names for a lease subcommand")
        _, opts = bash_complete(scripts["ours"], ours_bin, "etcdctl get foo ")
        eq(opts, [], "file names after a key")
        r = subprocess.run(["bash", "-c", "source %s; complete -p etcdctl" % scripts["ours"]],
                           capture_output=True, timeout=30)
        check(b"-o default" in r.stdout, "registered with -o default: %r" % r.stdout)
        if bad:
            raise AssertionError("%d problems:\n%s" % (len(bad), "\n".join(bad[:12])))
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- fish and zsh, when installed ----

FISH_CASES = [("etcdctl ge", ["get"]), ("etcdctl get --pr", ["--prefix", "--print-value-only"]),
              ("etcdctl lease ", LEASE_SUBS), ("etcdctl help lease t", ["timetolive"]),
              ("etcdctl lease x", [])]


@test
def ctl_complete_fish_scripts_both_ways():
    if not shutil.which("fish"):
        print("    skipped: fish is not installed")
        return
    d = our_ctl_dir()
    try:
        real_bin = real_ctl_dir(d)
        bad = []
        for script_from in (os.path.join(d, "etcdctl"), ETCDCTL):
            script = run_ctl(script_from, ["completion", "fish"])[1].decode()
            for bindir in (d, real_bin):
                env = ctl_env()
                env.update(PATH=bindir + ":" + env.get("PATH", "/usr/bin:/bin"), HOME=d)
                for line, want in FISH_CASES:
                    r = subprocess.run(["fish", "--no-config", "-c", "source; complete -C $argv[1]", line],
                                       input=script.encode(), capture_output=True, env=env, timeout=60)
                    got = [l.split("\t")[0] for l in r.stdout.decode().splitlines()]
                    if got != want or r.returncode:
                        bad.append("script of %s, binary in %s: %r gives %r (%r), want %r" %
                                   (script_from, bindir, line, got, r.stderr[-300:], want))
        if bad:
            raise AssertionError("\n".join(bad))
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Pty:
    """An interactive shell on a pty, read until what is awaited shows."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(argv[0], argv, env)
        self.out = b""

    def send(self, s):
        os.write(self.fd, s.encode())

    def wait_for(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.out):
                return True
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    break
        return bool(re.search(pattern, self.out))

    def close(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


# line -> what must show on the terminal after Tab
ZSH_CASES = [("etcdctl ge", rb"etcdctl get "), ("etcdctl lease ", rb"keep-alive[^\n]*\n[^\n]*list"),
             ("etcdctl get --pr", rb"--print-value-only"), ("etcdctl help lease t", rb"timetolive "),
             ("etcdctl get 'a b' --fr", rb"--from-key ")]


@test
def ctl_complete_zsh_scripts_both_ways():
    if not shutil.which("zsh"):
        print("    skipped: zsh is not installed")
        return
    d = our_ctl_dir()
    try:
        real_bin = real_ctl_dir(d)
        bad = []
        for n, script_from in enumerate((os.path.join(d, "etcdctl"), ETCDCTL)):
            script = os.path.join(d, "script%d.zsh" % n)
            with open(script, "wb") as f:
                f.write(run_ctl(script_from, ["completion", "zsh"])[1])
            for bindir in (d, real_bin):
                env = ctl_env()
                env.update(PATH=bindir + ":" + env.get("PATH", "/usr/bin:/bin"), TERM="dumb", HOME=d)
                sh = Pty(["zsh", "-f", "-i"], env)
                try:
                    sh.send("PS1='> '; autoload -U compinit; compinit -u -D; source %s; "
                            "compdef _etcdctl etcdctl; zstyle ':completion:*' list-prompt ''\n" % script)
                    for k, (line, want) in enumerate(ZSH_CASES):
                        # a computed marker: the echo of the command cannot match it
                        sh.send("print READY$((%d*7))\n" % (k + 6))
                        check(sh.wait_for(b"READY%d" % ((k + 6) * 7)), "zsh: %r" % sh.out[-500:])
                        sh.out = b""
                        sh.send(line + "\t")
                        if not sh.wait_for(want):
                            bad.append("script of %s, binary in %s: %r shows %r" %
                                       (script_from, bindir, line, sh.out[-400:]))
                        sh.send("\x15")  # kill the line
                finally:
                    sh.close()
        if bad:
            raise AssertionError("\n".join(bad))
    finally:
        shutil.rmtree(d, ignore_errors=True)
