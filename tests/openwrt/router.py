"""A small OpenWrt system for tests: OpenWrt's real userland, booted with procd as PID 1.

The rootfs holds the programs built by build-userland.sh at their OpenWrt paths, the
unmodified base-files, procd, uci and ubox scripts of one OpenWrt release tree, OpenWrt's
busybox, and the host's shared libraries those programs need. `Router.boot()` starts procd
as PID 1 of new PID, mount, UTS, IPC and network namespaces; `Router.sh()` runs a command
inside with nsenter. Only the loopback interface of that network namespace is used.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# Mounts and pivot_root, run inside the new namespaces by the host's sh, then procd.
BOOT_SCRIPT = r"""
set -e
R=$1
mount --make-rprivate /
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys" || true
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mkdir -p "$R/tmp/run" "$R/tmp/lock" "$R/tmp/state" "$R/tmp/log"
mount -t tmpfs -o mode=0755 dev "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3
mknod -m 666 "$R/dev/zero" c 1 5
mknod -m 666 "$R/dev/random" c 1 8
mknod -m 666 "$R/dev/urandom" c 1 9
mknod -m 666 "$R/dev/tty" c 5 0
: >"$R/dev/console"  # procd logs to the console: a file the test can read
mkdir -p "$R/dev/pts" "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ip link set lo up
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
exec /bin/sh -c 'umount -l /.oldroot; rmdir /.oldroot; exec env -i container=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin /sbin/procd'
"""


def ldd_libs(path):
    """Shared libraries (absolute host paths) an ELF file loads, or [] for scripts."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return []
    except OSError:
        return []
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            i = parts.index("=>")
            if i + 1 < len(parts) and parts[i + 1].startswith("/"):
                libs.append(parts[i + 1])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def copy_tree(src, dst):
    """cp -a src/. dst/ (merging into what is there)."""
    os.makedirs(dst, exist_ok=True)
    subprocess.run(["cp", "-a", src + "/.", dst + "/"], check=True)


class Router:
    """One rootfs of OpenWrt `release` ("24.10" or "25.12") with procd as PID 1."""

    def __init__(self, userland, release, workdir=None, overlays=()):
        self.userland = userland
        self.overlays = list(overlays)
        self.release = release
        self.tree = os.path.join(userland, "tree-" + release)
        self.work = workdir or tempfile.mkdtemp(prefix="owrt-")
        self.root = os.path.join(self.work, "root")
        self.proc = None
        self.pid = None

    # ---- rootfs ----
    def assemble(self):
        r = self.root
        t = self.tree
        os.makedirs(r, exist_ok=True)
        copy_tree(os.path.join(self.userland, "root"), r)
        copy_tree(os.path.join(t, "package/base-files/files"), r)
        pkg = os.path.join(t, "package/system")
        inst = [
            ("procd/files/reload_config", "sbin/reload_config", 0o755),
            ("procd/files/service", "sbin/service", 0o755),
            ("procd/files/procd.sh", "lib/functions/procd.sh", 0o644),
            ("procd/files/hotplug.json", "etc/hotplug.json", 0o600),
            ("ubox/files/log.init", "etc/init.d/log", 0o755),
            ("uci/files/lib/config/uci.sh", "lib/config/uci.sh", 0o644),
        ]
        for src, dst, mode in inst:
            d = os.path.join(r, dst)
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy(os.path.join(pkg, src), d)
            os.chmod(d, mode)
        # logd installs its reader as logread-ubox; /sbin/logread points at it.
        os.makedirs(os.path.join(r, "usr/libexec"), exist_ok=True)
        if os.path.exists(os.path.join(r, "sbin/logread")):
            shutil.move(os.path.join(r, "sbin/logread"), os.path.join(r, "usr/libexec/logread-ubox"))
        os.symlink("/usr/libexec/logread-ubox", os.path.join(r, "sbin/logread"))
        # Package managers' configuration as the release ships it.
        if self.release == "24.10":
            opkg_conf = os.path.join(pkg, "opkg/files/opkg.conf")
            os.makedirs(os.path.join(r, "etc/opkg"), exist_ok=True)
            shutil.copy(opkg_conf, os.path.join(r, "etc/opkg.conf"))
            with open(os.path.join(r, "etc/opkg.conf"), "a") as f:
                f.write("arch all 1\narch noarch 1\narch x86_64 10\n")
            os.makedirs(os.path.join(r, "usr/lib/opkg/info"), exist_ok=True)
            open(os.path.join(r, "usr/lib/opkg/status"), "w").close()
        else:
            os.makedirs(os.path.join(r, "etc/apk"), exist_ok=True)
            with open(os.path.join(r, "etc/apk/arch"), "w") as f:
                f.write("x86_64\n")
            open(os.path.join(r, "etc/apk/repositories"), "w").close()
        for d in ("proc", "sys", "dev", "tmp", "root", "overlay", "mnt", "etc/rc.d", "usr/lib"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        var = os.path.join(r, "var")
        if os.path.lexists(var):
            if os.path.isdir(var) and not os.path.islink(var):
                shutil.rmtree(var)
            else:
                os.unlink(var)
        os.symlink("tmp", var)
        # What base-files' config_generate writes on first boot (no board.json here).
        os.makedirs(os.path.join(r, "etc/config"), exist_ok=True)
        with open(os.path.join(r, "etc/config/system"), "w") as f:
            f.write("config system\n\toption hostname 'OpenWrt'\n\toption timezone 'UTC'\n"
                    "\toption ttylogin '0'\n\toption log_size '128'\n"
                    "\toption urandom_seed '0'\n")
        with open(os.path.join(r, "etc/inittab"), "w") as f:
            f.write("::sysinit:/etc/init.d/rcS S boot\n")
        # The image build enables these at build time: logd for logread, nothing else.
        os.symlink("../init.d/log", os.path.join(r, "etc/rc.d/S12log"))
        # The firewall: fw4 runs Debian's nft (OpenWrt's is the same nftables).
        for host in ("/usr/sbin/nft",):
            if os.path.exists(host):
                shutil.copy(host, os.path.join(r, host.lstrip("/")))
        # Extra trees (LuCI, ...) on top, before their libraries are looked up.
        for extra in self.overlays:
            copy_tree(extra, r)
        # Host shared libraries every ELF program needs, at the same paths.
        seen = set()
        for dirpath, _dirs, files in os.walk(r):
            for name in files:
                p = os.path.join(dirpath, name)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                for lib in ldd_libs(p):
                    if lib in seen or lib.startswith(r):
                        continue
                    seen.add(lib)
                    dst = os.path.join(r, lib.lstrip("/"))
                    if not os.path.exists(dst):
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        shutil.copy(os.path.realpath(lib), dst)
        # OpenWrt images ship libgcc_s (package libgcc) too.
        gcc_s = "/lib/x86_64-linux-gnu/libgcc_s.so.1"
        if os.path.exists(gcc_s) and not os.path.exists(os.path.join(r, gcc_s.lstrip("/"))):
            shutil.copy(gcc_s, os.path.join(r, gcc_s.lstrip("/")))
        with open(os.path.join(r, "etc/ld.so.conf"), "w") as f:
            f.write("/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n/lib\n/usr/lib\n")
        with open(os.path.join(r, "etc/nsswitch.conf"), "w") as f:
            f.write("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
        subprocess.run(["ldconfig", "-r", r], check=False)
        return self

    # ---- boot and run ----
    def boot(self, timeout=30):
        script = os.path.join(self.work, "boot.sh")
        with open(script, "w") as f:
            f.write(BOOT_SCRIPT)
        log = open(os.path.join(self.work, "console.log"), "wb")
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "sh", script, self.root],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            kids = self._children(self.proc.pid)
            if kids:
                pid = kids[0]
                try:
                    comm = open(f"/proc/{pid}/comm").read().strip()
                except OSError:
                    comm = ""
                if comm == "procd":
                    self.pid = pid
                    break
            if self.proc.poll() is not None:
                raise RuntimeError("boot failed: " + open(log.name).read())
            time.sleep(0.1)
        if self.pid is None:
            raise RuntimeError("procd did not start: " + open(log.name).read())
        self.wait_for(lambda: self.sh("ubus call service list", check=False).returncode == 0,
                      timeout, "ubus")
        self.wait_for(lambda: self.sh("ubus call log read '{\"lines\":1}'", check=False).returncode == 0,
                      timeout, "logd")
        return self

    @staticmethod
    def _children(pid):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def sh(self, cmd, check=True, timeout=60, input=None):
        """Runs `cmd` under the rootfs' /bin/sh inside the router's namespaces."""
        p = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
             "/usr/bin/env", "-i", "PATH=" + PATH, "HOME=/root", "/bin/sh", "-c", cmd],
            capture_output=True, text=True, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise RuntimeError(f"`{cmd}` exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def host_net(self, argv, **kw):
        """Runs a host program in the router's network namespace only."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n"] + argv, **kw)

    def host_popen(self, argv, **kw):
        """Starts a host program in the router's network namespace only."""
        return subprocess.Popen(["nsenter", "-t", str(self.pid), "-n"] + argv, **kw)

    def put(self, path, data, mode=0o644):
        """Writes a file as the router sees it (its /tmp is a tmpfs of its own)."""
        base = f"/proc/{self.pid}/root" if self.pid else self.root
        dst = os.path.join(base, path.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chmod(dst, mode)

    @staticmethod
    def wait_for(pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if pred():
                    return True
            except Exception:  # noqa: BLE001 - retried until the deadline
                pass
            time.sleep(0.2)
        raise TimeoutError("timed out waiting for " + what)

    def services(self, verbose=False):
        arg = " '{\"verbose\":true}'" if verbose else ""
        return json.loads(self.sh("ubus call service list" + arg).stdout or "{}")

    def instances(self, name="tinyderp"):
        """{instance: {...}} of a service as procd lists it (running ones have a pid)."""
        return self.services().get(name, {}).get("instances", {})

    def running(self, name="tinyderp"):
        return {k: v for k, v in self.instances(name).items() if v.get("running")}

    def logread(self):
        return self.sh("logread", check=False).stdout

    def log_mark(self):
        """Writes a unique line to the log; log_since() returns what follows it."""
        self._marks = getattr(self, "_marks", 0) + 1
        mark = f"harness-mark-{os.getpid()}-{self._marks}"
        self.sh(f"logger -t harness {mark}")
        return mark

    def log_since(self, mark):
        text = self.logread()
        i = text.rfind(mark)
        return text[i + len(mark):] if i >= 0 else text

    def shutdown(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.pid:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.shutdown()
        shutil.rmtree(self.work, ignore_errors=True)
