"""Starts the IPython kernel that runs one student notebook during grading.

The autograder writes a kernel spec whose command is this file (run as a
script with ``python -I``, never imported), so every kernel nbgrader starts
goes through here first. Standard library only: it runs before anything of
the student's.

Stage 1 (``python -I grading_kernel.py -f CONNECTION_FILE``):

1. resource limits: private writable memory (``BW_MEMORY_LIMIT`` bytes,
   RLIMIT_DATA, so an allocation beyond it fails with MemoryError instead of
   exhausting the machine), file size, no core dumps;
2. copies the connection file into the kernel's working folder (a scratch
   copy made for this notebook), and sends the kernel's stdout and stderr
   through a pipe to a relay process that copies them into the grader's log
   (the kernel can add to the log, not read it);
3. where Linux allows unprivileged user namespaces, enters a private user +
   mount namespace (``hide_folders``), and a network namespace when its
   client talks to it over Unix sockets in its working folder (the grader's
   ``IsolatedExecute`` asks for that): then it has no network at all, and
   cannot reach the other kernels' ports on 127.0.0.1 (their output channel
   would show the hidden tests as they run);

   - the temp folder (``tempfile.gettempdir()``, where every autograde run
     keeps its course, gradebooks and students' notebooks in ``bw-grade-*``)
     is replaced by a fresh, empty, writable tmpfs of its own
     (``PRIVATE_TMP_SIZE``), into which only the kernel's working folder (and
     the Python installation, should it lie in the temp folder) is
     bind-mounted back: the autograde runs on the machine, those that start
     later included, are out of sight;
   - an empty read-only tmpfs covers every folder in ``BW_HIDE`` still in
     view (the nbgrader course with the hidden tests and the gradebook, the
     output folder, the submissions, ``solutions/``, ``autograder/`` and the
     project's ``.git``), and /dev/null every file (a course bundle);
   - /dev becomes a /dev of its own: the harmless devices (and the GPUs')
     bound from the real one, a private size-capped /dev/shm;
   - every other mount becomes read-only, /sys included: the kernel writes
     only in its working folder and its temp folder, so it cannot leave code
     for the grader's Python (a ``.pth`` file) or for the next kernel;
   - a second user namespace then locks those mounts: the kernel cannot
     unmount them, and it cannot reach other processes' views through /proc
     (ptrace across user namespaces is refused).

   A failure once inside the namespace stops the kernel (no student code runs
   half-isolated). A working folder outside the temp folder, or a failed
   tmpfs mount, keeps the real temp folder: only the autograde runs found
   there at the start (``other_grading_runs``) are covered then. Runs under
   another temp folder (another ``TMPDIR``) are not covered;
4. re-executes Python (stage 2, this file's code passed with ``-c``) so the
   kernel keeps no capabilities; with namespaces, as the first process of a
   new PID namespace with a read-only /proc of its own (``run_as_pid_1``): it
   sees and signals only its own processes, writes no kernel setting (a
   grader running as root would otherwise let it set
   /proc/sys/kernel/core_pattern and run a program as root), and whatever it
   started dies with it.

Left open: other grading outputs and submissions elsewhere on the machine are
readable where file permissions allow (as root: everywhere), memory is limited
per process, not per kernel, and a kernel whose working folder's path is too
long for a Unix socket keeps TCP (and the network).

Stage 2 blocks imports of ``BW_BLOCK_MODULES`` (``solutions``,
``autograder``), keeps only an allowlist of environment variables and
starts ipykernel.

``--probe`` answers ``namespaces`` or ``none``: whether stage 1's isolation (the
private temp folder with the working folder bound back, a covered folder, the
rest read-only) works here.
"""
from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 1 << 18
MNT_DETACH = 2
# A mount's flags that a user namespace may not clear (nor change, for the atime ones):
# a read-only remount keeps them (statvfs's ST_* values are the MS_* ones).
KEPT_MOUNT_FLAGS = (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME
                    | os.ST_RELATIME)
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
# The devices a kernel gets in its own /dev (bound from the real one); GPUs' too.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEVICE_PATTERNS = ("nvidia*", "dri")
DEV_SHM_SIZE = 64 * 2**20
OVERFLOW_UID = 65534  # "nobody": the kernel's uid inside when the grader runs as root
# The kernel's own temp folder: a tmpfs (memory, outside RLIMIT_DATA), hence capped.
PRIVATE_TMP_SIZE = 256 * 2**20
PRIVATE_TMP_INODES = 65536
HALF_ISOLATED = "grading_kernel: 隔離の途中で失敗したのでカーネルを起動しません"

KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "JPY_PARENT_PID", "JPY_SESSION_NAME",
            "PYTHONHASHSEED", "PYDEVD_DISABLE_FILE_VALIDATION", "MPLBACKEND", "NVIDIA_VISIBLE_DEVICES")
KEEP_PREFIXES = ("LC_", "BERT_WORKSHOP_", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_user_namespace(libc, inside_uid: int, inside_gid: int, more: int = 0) -> None:
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | more), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{inside_uid} {uid} 1")
    _write("/proc/self/gid_map", f"{inside_gid} {gid} 1")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class IsolationError(OSError):
    """Isolation failed half-way: the kernel must not start."""


def hide_folders(folders: list[str], private_tmp: str | None = None, keep: list[str] = (),
                 offline: bool = False) -> None:
    """Isolate this process, in namespaces the kernel cannot undo:

    1. private_tmp (the temp folder) is replaced by an empty writable tmpfs, into
       which the folders `keep` (inside it; the working folder among them) are
       bind-mounted back at their paths (should that fail: the real temp folder
       stays, with a warning);
    2. an empty read-only tmpfs covers each folder of `folders` (/dev/null each file);
    3. every other mount becomes read-only: the process writes only in its working
       folder and its temp folder (else it could, say, put a .pth file into the
       grader's Python and run code outside these namespaces);
    4. a second user namespace, owned by a less privileged one, locks the mounts.

    offline: a network namespace of its own too (no network, not even the other
    kernels' TCP ports on 127.0.0.1: a kernel whose client talks to it over Unix
    sockets needs none).

    Raises OSError if namespaces cannot be made here (nothing done), IsolationError
    if a later step failed (the mounts made are locked all the same)."""
    libc = _libc()
    outside_uid, outside_gid = os.geteuid(), os.getegid()
    cwd = os.getcwd()
    _enter_user_namespace(libc, 0, 0, CLONE_NEWNET if offline else 0)
    try:
        _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
        writable = [private_tmp] if private_tmp and _private_tmp_or_warn(libc, private_tmp, keep, cwd) else []
        writable.append(_own_mount(libc, os.getcwd()))
        for path in folders:
            _cover(libc, path)
        _private_dev(libc)
        _read_only_except(libc, writable)
    except OSError as e:
        raise IsolationError(e.errno, f"{e}") from e
    finally:
        # Always, even after a failure: otherwise the kernel would start with every
        # capability in a namespace where it could unmount the covers.
        _enter_user_namespace(libc, outside_uid or OVERFLOW_UID, outside_gid or OVERFLOW_UID)


def _private_tmp_or_warn(libc, tmp: str, keep: list[str], cwd: str) -> bool:
    mounted = []
    try:
        _mount_private_tmp(libc, tmp, keep, cwd, mounted)
        return True
    except OSError as e:
        if mounted:  # back to the real temp folder, with the folders below covered
            libc.umount2(tmp.encode(), MNT_DETACH)
        os.chdir(cwd)
        print(f"grading_kernel: 専用の一時フォルダを作れませんでした ({e}); "
              "採点開始時にあった他の採点のフォルダだけを隠します", file=sys.stderr)
        return False


def _own_mount(libc, folder: str) -> str:
    """Make `folder` a mount of its own (a bind mount onto itself) and work in it, so
    that it can stay writable when the mount holding it becomes read-only."""
    if folder not in _mount_points():
        _check(libc.mount(folder.encode(), folder.encode(), None, MS_BIND | MS_REC, None), f"mount --rbind {folder}")
        os.chdir(folder)  # into the new mount (the old working folder is the one beneath)
    return folder


def _cover(libc, path: str) -> None:
    """An empty read-only tmpfs over a folder, /dev/null over a file. A path gone in
    the meantime (another run ended) needs nothing."""
    if os.path.isdir(path):
        result = libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                            b"size=4k,mode=0555")
    elif os.path.isfile(path):
        result = libc.mount(b"/dev/null", path.encode(), None, MS_BIND, None)
    else:
        return
    if result != 0 and ctypes.get_errno() != errno.ENOENT:
        _check(result, f"mount over {path}")


def _private_dev(libc) -> None:
    """A /dev of the kernel's own: an empty tmpfs with only the harmless devices bound in
    (and the GPUs'), the usual links, and a private size-capped /dev/shm. The real /dev
    holds disks, the kernel log and consoles, which a grader running as root exposes
    (file permissions are all that guard a device)."""
    keep = [name for name in DEVICES if os.path.exists(f"/dev/{name}")]
    keep += sorted({os.path.basename(p) for pattern in DEVICE_PATTERNS for p in glob.glob(f"/dev/{pattern}")})
    handles = [(name, os.open(f"/dev/{name}", os.O_PATH)) for name in keep]  # before /dev is covered
    try:
        _check(libc.mount(b"tmpfs", b"/dev", b"tmpfs", MS_NOSUID | MS_NOEXEC, b"size=64k,mode=0755"), "mount tmpfs /dev")
        for name, fd in handles:
            target = f"/dev/{name}"
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(target)
            else:
                open(target, "w").close()
            _bind_handle(libc, fd, target)
    finally:
        for _, fd in handles:
            os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")
    _check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={DEV_SHM_SIZE},mode=1777".encode()), "mount tmpfs /dev/shm")
    _check(libc.mount(None, b"/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, None),
           "mount -o remount,ro /dev")


def _mount_points() -> list[str]:
    """Every mount point of this mount namespace, parents before children."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        points = [line.split()[4] for line in f]
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...)
    decoded = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in points]
    return list(dict.fromkeys(decoded))


def _read_only_except(libc, writable: list[str]) -> None:
    """Remount every mount read-only (keeping its locked flags), /sys included, but the
    `writable` ones, the private /dev (made read-only already; its devices and /dev/shm
    stay usable) and /proc (replaced by a read-only one in the kernel's own PID
    namespace: see run_as_pid_1). A mount the process cannot reach (another user's
    folder, one now covered) is skipped: it cannot write there either."""
    for point in _mount_points():
        if point in writable or _inside(point, "/dev") or _inside(point, "/proc"):
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            continue
        if flags & os.ST_RDONLY:
            continue
        result = libc.mount(None, point.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | (flags & KEPT_MOUNT_FLAGS),
                            None)
        if result != 0 and ctypes.get_errno() not in (errno.ENOENT, errno.EACCES):
            _check(result, f"mount -o remount,bind,ro {point}")


def _bind_handle(libc, fd: int, target: str) -> None:
    """Bind-mount what an O_PATH handle points to onto `target`: the handle was taken
    before a tmpfs covered the original, which its path no longer reaches."""
    _check(libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, MS_BIND | MS_REC, None),
           f"mount --rbind {target}")


def _mount_private_tmp(libc, tmp: str, keep: list[str], cwd: str, mounted: list) -> None:
    # Handles on the folders to keep, taken in this namespace (a bind mount's
    # source must be in it) and before the tmpfs covers them.
    handles = []
    try:
        for folder in keep:
            handles.append((os.open(folder, os.O_PATH | os.O_DIRECTORY), folder))
        _check(libc.mount(b"tmpfs", tmp.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                          f"size={PRIVATE_TMP_SIZE},nr_inodes={PRIVATE_TMP_INODES},mode=1777".encode()),
               f"mount tmpfs {tmp}")
        mounted.append(tmp)
        for fd, folder in handles:
            os.makedirs(folder, exist_ok=True)
            _bind_handle(libc, fd, folder)
    finally:
        for fd, _ in handles:
            os.close(fd)
    # The old working folder lies under the tmpfs now ('..' from it would lead to
    # the real temp folder's subfolders): work in the bound copy.
    os.chdir(cwd)


def private_tmp_plan(cwd: str) -> tuple[str | None, list[str]]:
    """(the temp folder, the folders inside it to bind back) when the working folder
    `cwd` lies inside the temp folder, else (None, []). Bound back: `cwd` and what
    Python itself needs (the installation, sys.path), should they lie there too."""
    tmp = os.path.realpath(tempfile.gettempdir())
    cwd = os.path.realpath(cwd)
    if tmp == os.sep or cwd == tmp or not _inside(cwd, tmp):
        return None, []
    needed = [cwd, sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)), *sys.path]
    keep: list[str] = []
    for folder in sorted({os.path.realpath(p) for p in needed if p and os.path.isdir(p)}):
        if folder == tmp:
            return None, []  # Python needs the whole temp folder: it cannot be replaced
        if _inside(folder, tmp) and not any(_inside(folder, k) for k in keep):
            keep.append(folder)
    return tmp, keep


def isolate(folders: list[str], offline: bool = False) -> None:
    """Stage 1's isolation of the working folder's process (see the module docstring)."""
    cwd = os.getcwd()
    tmp, keep = private_tmp_plan(cwd)
    # Out of sight with a private temp folder; covered one by one without it.
    hide_folders(folders + other_grading_runs(cwd), tmp, keep, offline)


def other_grading_runs(cwd: str) -> list[str]:
    """The folders of other autograde runs on this machine (their courses with the
    hidden tests, gradebooks and students' notebooks), all but the scratch folder
    this kernel works in: covered where the kernel keeps the real temp folder (its
    working folder lies outside it, or the private one could not be mounted). Only
    the runs there at the kernel's start: one that starts later would stay in
    view, hence the private temp folder, under which none of them is in sight."""
    pattern = os.path.join(os.path.realpath(tempfile.gettempdir()), "bw-grade-*")  # cwd has no links either
    return [f for f in sorted(glob.glob(pattern)) if os.path.isdir(f) and not (cwd + os.sep).startswith(f + os.sep)]


# What the kernel's first process must find (run by probe): only itself in /proc, kernel
# settings and /sys read-only, no disk or kernel log in /dev, /dev/null and /dev/shm usable.
PROBE_PID_1 = """
import os
alone = [p for p in os.listdir("/proc") if p.isdigit()] == [str(os.getpid())] and os.getpid() == 1
try:
    open("/proc/sys/kernel/core_pattern", "w").close()
    settings_locked = False
except OSError:
    settings_locked = True
sys_read_only = bool(os.statvfs("/sys").f_flag & os.ST_RDONLY)
devices = sorted(os.listdir("/dev"))
open("/dev/null", "w").write("x")
open("/dev/shm/probe", "w").write("x")
os._exit(0 if alone and settings_locked and sys_read_only and "kmsg" not in devices else 1)
"""


def probe() -> str:
    """'namespaces' if stage 1's isolation works here, else 'none' (tried in a child
    process working in a folder in the temp folder, as kernels do): a covered folder
    is empty, the working folder is there and writable, what is written in the temp
    folder stays in the child's own, the rest is read-only, and the kernel's first
    process sees only itself (PROBE_PID_1)."""
    folder = tempfile.mkdtemp(prefix="bw-probe-")
    work = os.path.join(folder, "work")
    covered = os.path.join(work, "covered")
    os.makedirs(covered)
    for path in (os.path.join(folder, "secret"), os.path.join(covered, "secret"), os.path.join(work, "kept")):
        with open(path, "w") as f:
            f.write("x")
    private = folder + "-private"  # written by the child in its temp folder: must not appear here
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(work)
            isolate([covered], offline=True)
            with open("kept") as f:
                kept = f.read() == "x"
            for path in ("written", private):
                with open(path, "w") as f:
                    f.write("x")
            hidden = not any(os.path.exists(os.path.join(d, "secret")) for d in (folder, covered))
            read_only = bool(os.statvfs("/").f_flag & os.ST_RDONLY)  # the rest of the machine
            if not (kept and hidden and read_only):
                os._exit(1)
            run_as_pid_1([sys.executable, "-I", "-c", PROBE_PID_1])  # exits with its status
        except BaseException:
            os._exit(1)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    ok = (os.waitstatus_to_exitcode(status) == 0 and os.path.exists(os.path.join(work, "written"))
          and not os.path.exists(private))
    shutil.rmtree(folder, ignore_errors=True)
    if os.path.exists(private):
        os.remove(private)
    return "namespaces" if ok else "none"


def set_limits() -> None:
    memory = int(os.environ.get("BW_MEMORY_LIMIT") or 0)
    if memory > 0:
        # RLIMIT_DATA (private writable memory: the heap, tensors, anonymous mmaps) rather
        # than RLIMIT_AS: shared libraries and CUDA's address-space reservations do not count.
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    file_size = int(os.environ.get("BW_FILE_SIZE_LIMIT") or 0)
    if file_size > 0:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def connection_file_argument(argv: list[str]) -> int:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-f":
            return i + 1
    raise SystemExit("grading_kernel: -f CONNECTION_FILE がありません")


def stage1(argv: list[str]) -> None:
    set_limits()
    i = connection_file_argument(argv)
    # The kernel's working folder is its scratch copy; keep the connection file
    # there, since the folder holding it may be hidden below.
    local = os.path.join(os.getcwd(), ".kernel-connection.json")
    shutil.copyfile(argv[i], local)
    os.chmod(local, 0o600)
    argv = argv[:i] + [local] + argv[i + 1:]
    folders = [f for f in os.environ.get("BW_HIDE", "").split(os.pathsep) if f]
    with open(os.path.abspath(__file__), encoding="utf-8") as f:
        code = f.read()  # stage 2 runs from memory: this file's folder may be hidden below
    relay_output()
    stage2_command = [sys.executable, "-I", "-c", code, "--stage2", *argv]
    if os.environ.get("BW_NAMESPACES", "1") == "1":
        try:
            isolate(folders, offline=uses_unix_sockets(local))
        except IsolationError as e:  # half-isolated: no student code runs like this
            print(f"{HALF_ISOLATED} ({e})", file=sys.stderr)
            sys.exit(1)
        except OSError as e:  # no namespaces here: nothing was changed
            print(f"grading_kernel: フォルダを隠せませんでした ({e}); 制限を減らして続けます", file=sys.stderr)
        else:
            run_as_pid_1(stage2_command)
    os.execv(sys.executable, stage2_command)


def run_as_pid_1(command: list[str]) -> None:
    """Run `command` as the first process of a new PID namespace, with a read-only /proc
    of that namespace, and wait for it (never returns). The kernel then sees and can
    signal only its own processes (not the grader, the relay, other students' kernels),
    can write no kernel setting under /proc/sys, and everything it started dies with
    it. This process stays outside: it passes on the signals it gets (an interrupt, a
    shutdown) and dies with the kernel's status; killed, it takes the kernel with it."""
    libc = _libc()
    try:
        _check(libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        child = os.fork()
    except OSError as e:
        print(f"{HALF_ISOLATED} ({e})", file=sys.stderr)
        sys.exit(1)
    if child == 0:
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.setsid()  # signals to this kernel's process group reach the parent only, which passes them on
            _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, None),
                   "mount proc")
            os.execv(command[0], command)
        except BaseException as e:  # noqa: BLE001 (whatever it was, the kernel must not start)
            print(f"{HALF_ISOLATED} ({e})", file=sys.stderr)
            os._exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda number, frame: os.kill(child, number))
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) % 256)


def uses_unix_sockets(connection_file: str) -> bool:
    """Whether the kernel talks to its client over Unix sockets (transport "ipc"), not TCP."""
    with open(connection_file, encoding="utf-8") as f:
        return json.load(f).get("transport") == "ipc"


def relay_output() -> None:
    """The kernel's stdout and stderr become a pipe to a small relay process that
    copies them into the grader's log. With the log itself as fd 2, the kernel could
    read it (/proc/self/fd/2: other students' grading) or rewrite it."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the relay: until every writer (the kernel and its children) is gone
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)  # an interrupt sent to the kernel's group is not for it
        os.close(write_end)
        while chunk := os.read(read_end, 65536):
            os.write(2, chunk)
        os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)


class BlockedModules:
    """A meta-path finder that refuses the reference implementation and the grader."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (採点中は使えません)", name=name)
        return None


def scrub_environment(home: str) -> None:
    keep = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k.startswith(KEEP_PREFIXES)}
    os.environ.clear()
    os.environ.update(keep)
    os.environ.update({
        "HOME": home, "IPYTHONDIR": os.path.join(home, ".ipython"), "MPLCONFIGDIR": os.path.join(home, ".mpl"),
        "XDG_CACHE_HOME": os.path.join(home, ".cache"), "HF_HOME": os.path.join(home, ".cache", "hf"),
        "HF_HUB_OFFLINE": "1", "USER": "student", "LOGNAME": "student", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    })


def stage2(argv: list[str]) -> None:
    blocked = [m for m in os.environ.get("BW_BLOCK_MODULES", "").split(",") if m]
    scrub_environment(os.getcwd())
    sys.meta_path.insert(0, BlockedModules(blocked))
    for name in list(sys.modules):
        if name.partition(".")[0] in blocked:
            del sys.modules[name]
    sys.argv = [sys.argv[0], *argv]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)
    # The kernel has read its connection file: remove it, so that no other
    # kernel can find the key and ports of this one.
    try:
        os.remove(argv[connection_file_argument(argv)])
    except OSError:
        pass
    app.start()


def main(argv: list[str]) -> None:
    if argv[:1] == ["--probe"]:
        print(probe())
    elif argv[:1] == ["--stage2"]:
        stage2(argv[1:])
    else:
        stage1(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
