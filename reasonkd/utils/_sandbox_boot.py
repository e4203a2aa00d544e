"""Runs INSIDE the sandbox, before the untrusted program (stdlib only; never imported by reasonkd).

reasonkd.utils.sandbox starts it as `python -I -B -c <this file's text> CONFIG_JSON`
in the sandbox folder, next to the program and a `.nonce` file. It then

1. (unshare backend only) builds a minimal root inside the fresh user+mount
   namespace: read-only binds of the system and Python folders, the sandbox
   folder read-write, a fresh /proc, then pivot_root and a nested user
   namespace, which drops every capability over those mounts;
2. sets hard rlimits (CPU seconds, address space, file size, open files,
   processes, no core dumps), which the program cannot raise again;
3. sends stdout/stderr to files in the sandbox folder (bounded by the file-size
   limit, so a program that prints forever cannot fill the harness's memory);
4. runs the program as __main__ and, only if its top level finished, prints the
   nonce (read and deleted before the program starts) as the last line. A
   program that closes stdout, calls os._exit, or is
   killed never prints it, so the harness records it as a failure.
"""

import ctypes
import json
import os
import resource
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
CLONE_NEWUSER, MNT_DETACH = 0x10000000, 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)


def _jail(root: str, work: str, ro_paths: list, devices: list) -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def mount(src, tgt, fstype, flags, data=None):
        def enc(s):
            return None if s is None else s.encode()

        if libc.mount(enc(src), enc(tgt), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {src} -> {tgt}: {os.strerror(err)}")

    def bind(src, tgt, readonly):
        mount(src, tgt, None, MS_BIND)
        # a remount must keep the flags the host locked on the source mount (nosuid, nodev, ...)
        keep = os.statvfs(tgt).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096)
        mount(None, tgt, None, MS_REMOUNT | MS_BIND | MS_NOSUID | keep | (MS_RDONLY if readonly else 0))

    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for p in ro_paths:
        target = root + p
        if os.path.islink(p):  # merged /usr: /lib -> usr/lib stays a link
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(os.readlink(p), target)
        elif os.path.isdir(p):
            os.makedirs(target, exist_ok=True)
            bind(p, target, readonly=True)
    os.makedirs(root + "/dev", exist_ok=True)
    for d in devices:
        if os.path.exists(d):
            open(root + d, "w").close()
            mount(d, root + d, None, MS_BIND)
    os.makedirs(root + work, exist_ok=True)
    bind(work, root + work, readonly=False)
    os.makedirs(root + "/proc", exist_ok=True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root failed")
    libc.umount2(b".", MNT_DETACH)  # the host's root is gone from this namespace
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    # A nested user namespace: the program keeps no capability over the mounts
    # above, so it cannot remount them writable or unmount them.
    if libc.unshare(CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER) failed")


def _guard() -> None:
    """No new processes, for when RLIMIT_NPROC cannot bind (the harness runs as real root).

    A Python-level guard in the spirit of human-eval's reliability_guard: it stops
    accidental and naive fork bombs, not a program that brings its own machine code.
    """

    def refuse(*_a, **_k):
        raise PermissionError("creating processes is disabled in this sandbox")

    for name in (
        "fork",
        "forkpty",
        "system",
        "popen",
        "posix_spawn",
        "posix_spawnp",
        "execv",
        "execve",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execvp",
        "execvpe",
        "spawnv",
        "spawnve",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnvp",
        "spawnvpe",
        "register_at_fork",
    ):
        if hasattr(os, name):
            setattr(os, name, refuse)
    for mod in ("ctypes", "_ctypes", "_posixsubprocess", "multiprocessing", "subprocess", "pty"):
        sys.modules[mod] = None  # import fails


def _signal_guard() -> None:
    """Refuse signals to anything but the program's own children, as Landlock's signal scope does.

    The namespaces already make the harness unreachable; without this, kill(0) and
    kill(getppid()) would be silently ignored by the namespace's init (a no-op that
    lets the program carry on), where they should be refused and so fail.
    """
    real_kill, real_killpg, me = os.kill, os.killpg, os.getpid()

    def kill(pid, sig):
        if pid in (0, -1, 1, me, os.getppid()) or pid < 0:
            raise PermissionError(1, "signalling outside the sandbox is not permitted")
        return real_kill(pid, sig)

    def killpg(pgid, sig):
        raise PermissionError(1, "signalling process groups is not permitted")

    os.kill, os.killpg = kill, killpg
    del real_killpg


def main() -> None:
    cfg = json.loads(sys.argv[1])
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # fd 0 again, so the program sees an empty stdin
    if cfg.get("jail"):
        _jail(cfg["root"], cfg["work"], cfg["ro_paths"], cfg["devices"])
    os.chdir(cfg["work"])
    with open(".nonce") as f:
        nonce = f.read().strip()
    os.remove(".nonce")
    try:
        os.setsid()  # kill(0, ...) then reaches only this sandbox's own processes
    except OSError:
        pass  # already a group leader
    limits = [
        (resource.RLIMIT_CPU, cfg["cpu_s"]),
        (resource.RLIMIT_FSIZE, cfg["fsize"]),
        (resource.RLIMIT_NOFILE, cfg["nofile"]),
        (resource.RLIMIT_CORE, 0),
    ]
    if cfg.get("mem"):
        limits.append((resource.RLIMIT_AS, cfg["mem"]))
    if cfg.get("nproc"):
        limits.append((resource.RLIMIT_NPROC, cfg["nproc"]))
    for what, value in limits:
        resource.setrlimit(what, (value, value))
    out = os.open(".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    if cfg.get("guard"):
        _guard()
    _signal_guard()
    path = os.path.join(cfg["work"], cfg["program"])
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    sys.argv = [path]
    del cfg, f
    exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
    sys.stdout.flush()
    sys.stdout.write("\n" + nonce + "\n")
    sys.stdout.flush()


main()
