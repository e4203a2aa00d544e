"""Hostile programs against reasonkd.utils.sandbox: each must be contained, reported as a
failure with the right status, leave the harness alive and write nothing outside its folder.

Every test runs on each isolating backend that works on this machine (sandlock, unshare).
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reasonkd.utils import sandbox as sb

BACKENDS = [b for b in ("sandlock", "unshare") if b in sb.available_backends()]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no isolating sandbox backend on this machine")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def base(tmp_path):
    """The folder sandboxes are created in; it must be empty again afterwards."""
    d = tmp_path / "sbx"
    d.mkdir()
    yield str(d)
    assert list(d.iterdir()) == [], "sandbox folder left behind"


def _run(code, backend, base, **kw):
    kw.setdefault("timeout", 10)
    return sb.run_in_sandbox(textwrap.dedent(code), backend=backend, base_dir=base, **kw)


def _no_stray_processes(marker: str, wait: float = 5.0) -> None:
    """No process started for a sandbox under `marker` is left (after a short grace for teardown)."""
    deadline = time.monotonic() + wait
    while True:
        stray = []
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    stray.append(pid)
            except OSError:
                continue
        if not stray:
            return
        assert time.monotonic() < deadline, f"processes {stray} outlived their sandbox"
        time.sleep(0.2)


def test_backend_is_reported():
    assert sb.sandbox_backend() in sb.BACKENDS
    assert sb.sandbox_backend() == BACKENDS[0]


def test_plain_program_passes(backend, base):
    r = _run("import sys\nprint('hi')\nprint('err', file=sys.stderr)\n", backend, base)
    assert r.ok and r.status == "passed" and r.returncode == 0
    assert r.stdout == "hi\n" and "err" in r.stderr and r.backend == backend


def test_failing_program_fails(backend, base):
    r = _run("assert 1 == 2, 'boom'\n", backend, base)
    assert not r.ok and r.status == "failed" and "AssertionError: boom" in r.stderr


def test_fork_bomb(backend, base):
    r = _run(
        """
        import os
        while True:
            os.fork()
        """,
        backend,
        base,
        timeout=10,
    )
    assert not r.ok and r.status in ("failed", "killed", "timeout")
    _no_stray_processes(base)


def test_orphaned_child_is_reaped(backend, base):
    r = _run(
        """
        import os, time
        try:
            if os.fork() == 0:
                time.sleep(60)
        except Exception:
            pass
        """,
        backend,
        base,
        timeout=5,
    )
    assert r.seconds < 30
    _no_stray_processes(base)


def test_memory_bomb(backend, base):
    r = _run(
        """
        hog = []
        while True:
            hog.append(bytearray(64 << 20))
        """,
        backend,
        base,
        memory_mb=256,
    )
    assert not r.ok and r.status in ("memory", "killed")


def test_infinite_loop(backend, base):
    r = _run("while True:\n    pass\n", backend, base, timeout=2)
    assert not r.ok and r.status == "timeout" and r.seconds < 8


def test_write_outside(backend, base, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = [
        outside / "evil.txt",
        Path(f"/tmp/reasonkd-evil-{secrets.token_hex(4)}.txt"),
        Path.home() / f".reasonkd-evil-{secrets.token_hex(4)}",
    ]
    r = _run("\n".join(f"open({str(t)!r}, 'w').write('pwned')" for t in targets), backend, base)
    assert (
        not r.ok
        and r.status == "failed"
        and ("PermissionError" in r.stderr or "OSError" in r.stderr or "FileNotFoundError" in r.stderr)
    )
    assert not any(t.exists() for t in targets)
    assert list(outside.iterdir()) == []


def test_parent_environment_is_invisible(backend, base, monkeypatch):
    value = "s3cr3t-" + secrets.token_hex(8)
    monkeypatch.setenv("REASONKD_TEST_SECRET", value)
    r = _run(
        f"""
        import os
        leaked = [os.environ.get("REASONKD_TEST_SECRET", "")]
        for pid in {{os.getppid(), 1, {os.getpid()}}}:
            try:
                leaked.append(open(f"/proc/{{pid}}/environ", "rb").read().decode(errors="replace"))
            except OSError:
                pass
        print("|".join(leaked))
        assert any("REASONKD_TEST_SECRET" in x or x.startswith("s3cr3t") for x in leaked), "nothing leaked"
        """,
        backend,
        base,
    )
    assert not r.ok and r.status == "failed"
    assert value not in r.stdout + r.stderr


def test_parent_files_are_unreadable(backend, base, tmp_path):
    value = "topsecret-" + secrets.token_hex(8)
    in_tmp = tmp_path / "secret.txt"
    in_home = Path.home() / f".reasonkd-sbx-secret-{secrets.token_hex(4)}"
    in_tmp.write_text(value)
    in_home.write_text(value)
    try:
        r = _run(
            f"""
            found = []
            for path in ({str(in_tmp)!r}, {str(in_home)!r}):
                try:
                    found.append(open(path).read())
                except OSError as e:
                    print("denied", type(e).__name__)
            print(found)
            assert found, "nothing read"
            """,
            backend,
            base,
        )
    finally:
        in_home.unlink()
    assert not r.ok and r.status == "failed"
    assert value not in r.stdout + r.stderr and r.stdout.count("denied") == 2


def test_network_is_blocked(backend, base):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    r = _run(
        f"""
        import socket
        s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
        s.sendall(b"exfiltrated")
        """,
        backend,
        base,
    )
    t.join()
    server.close()
    assert not r.ok and r.status == "failed" and accepted == []


HARNESS = """
import json, sys
from reasonkd.utils.sandbox import run_in_sandbox
r = run_in_sandbox(sys.argv[1], timeout=10, backend=sys.argv[2], base_dir=sys.argv[3])
print(json.dumps(r.to_dict()))
"""


@pytest.mark.parametrize("victim", ["os.getppid()", "0", "-1"])
def test_killing_the_parent(backend, base, victim):
    # the harness runs in its own process so a containment failure cannot take pytest with it
    code = f"import os, signal\nos.kill({victim}, signal.SIGKILL)\nprint('still here')\n"
    p = subprocess.run([sys.executable, "-c", HARNESS, code, backend, base], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"harness died: rc={p.returncode} {p.stderr[-500:]}"
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert not r["ok"] and r["status"] in ("failed", "killed")


def test_delete_outside(backend, base, tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    r = _run(f"import os, shutil\nos.remove({str(victim)!r})\nshutil.rmtree({str(tmp_path)!r})\n", backend, base)
    assert not r.ok and r.status == "failed"
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    "how", ["import os\nos.close(1)\nos.close(2)\n", "import sys\nsys.stdout.close()\n", "import os\nos._exit(0)\n"]
)
def test_closed_stdout_or_early_exit_is_a_failure(backend, base, how):
    r = _run(how, backend, base)
    assert not r.ok and r.status in ("incomplete", "failed")


def test_endless_output_is_bounded(backend, base):
    r = _run("while True:\n    print('x' * 10000)\n", backend, base, timeout=10, max_file_mb=2)
    assert not r.ok and r.status in ("output_limit", "killed", "failed")
    assert len(r.stdout) <= sb.MAX_CAPTURE


def test_run_many_keeps_order_and_runs_in_parallel(backend, base):
    progs = [f"import time\ntime.sleep(0.5)\nprint({i})" for i in range(4)]
    results = sb.run_many(progs, workers=2, backend=backend, base_dir=base)
    assert [r.stdout.strip() for r in results] == ["0", "1", "2", "3"]
    assert all(r.ok for r in results)


@pytest.mark.parametrize(
    "code,statuses",
    [
        ("import os\nwhile True:\n    os.fork()\n", ("failed",)),
        ("hog = []\nwhile True:\n    hog.append(bytearray(64 << 20))\n", ("memory", "killed")),
        ("while True:\n    pass\n", ("timeout",)),
        ("import os\nprint(os.environ['REASONKD_TEST_SECRET'])\n", ("failed",)),
        ("import os\nos.kill(os.getppid(), 9)\n", ("failed",)),
    ],
)
def test_rlimit_backend_still_limits(tmp_path, monkeypatch, code, statuses):
    """The last-resort backend has no file or network isolation, but keeps the limits."""
    monkeypatch.setenv("REASONKD_TEST_SECRET", "x")
    r = sb.run_in_sandbox(code, timeout=2, memory_mb=256, backend="rlimit", base_dir=str(tmp_path))
    assert not r.ok and r.status in statuses, r
