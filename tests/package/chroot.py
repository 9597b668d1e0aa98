"""A clean Debian 12 (bookworm) to install the package into: a cached debootstrap base, and for each
test run a throw-away overlay on top of it.

Layout under ``.cache/chroot/`` (gitignored), reused across runs:

- ``bookworm-<arch>/``: ``debootstrap --variant=minbase`` plus ``apt-get update``; complete once
  ``bookworm-<arch>.done`` exists (an interrupted debootstrap is started over). Lists older than
  :data:`LISTS_MAX_AGE` are refreshed, so that apt does not ask for files the mirror dropped.
- ``apt-archives/``: the ``.deb`` files apt downloads (python3.11, systemd, coturn, ...), bind-mounted
  into every run so that only the first run downloads them.
- ``run/``: the overlay of the current run (upper and work dirs, the merged root); removed after.

Nothing here touches the host outside ``.cache/chroot``: the run's mounts (overlay, proc, sys, dev,
the archive cache) live under ``run/root`` and are unmounted at the end, also after a crash (the next
run unmounts what a killed one left).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
LISTS_MAX_AGE = 3 * 24 * 3600.0
POLICY_RC_D = "#!/bin/sh\n# installed by tests/package: no service starts inside the test chroot\nexit 101\n"


def _run(argv: Sequence[str], *, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, text=True, timeout=timeout, **kwargs)


def ensure_base(cache: Path, arch: str) -> Path:
    """The cached minimal bookworm for ``arch``; made by debootstrap (about a minute) if missing."""
    base = cache / f"{SUITE}-{arch}"
    done = cache / f"{SUITE}-{arch}.done"
    if not done.exists():
        unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        _run(["debootstrap", "--variant=minbase", f"--arch={arch}", SUITE, str(base), MIRROR],
             stdout=subprocess.DEVNULL)
        (base / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\ndeb {MIRROR} {SUITE}-updates main\n"
            f"deb http://deb.debian.org/debian-security {SUITE}-security main\n"
        )
        done.touch()
    lists = base / "var/lib/apt/lists"
    stamp = base / "var/lib/apt/periodic/update-success-stamp"
    if not stamp.exists() or time.time() - stamp.stat().st_mtime > LISTS_MAX_AGE:
        shutil.copy2("/etc/resolv.conf", base / "etc/resolv.conf")
        _run(["chroot", str(base), "apt-get", "update", "-qq"], stdout=subprocess.DEVNULL)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    assert lists.is_dir()
    return base


def mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def unmount_below(path: Path) -> None:
    """Unmount everything mounted at or below ``path``, deepest first (lazily if busy).
    Raises RuntimeError if something stays mounted: removing the tree then would reach into the
    host's /dev through the bind mount."""
    for point in sorted(mounts_below(path), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_below(path)
    if left:
        raise RuntimeError(f"still mounted below {path}: {left}")


@dataclass
class Chroot:
    """A writable root made of the cached base plus an overlay, with /proc, /sys and /dev."""

    root: Path
    run_dir: Path
    archives: Path

    API_MOUNTS = ("var/cache/apt/archives", "dev", "sys", "proc")

    @classmethod
    def open(cls, base: Path, run_dir: Path, archives: Path) -> Chroot:
        unmount_below(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
        upper, work, root = run_dir / "upper", run_dir / "work", run_dir / "root"
        for d in (upper, work, root, archives):
            d.mkdir(parents=True, exist_ok=True)
        chroot = cls(root, run_dir, archives)
        try:
            _run(["mount", "-t", "overlay", "overlay", "-o",
                  f"lowerdir={base},upperdir={upper},workdir={work}", str(root)])
            chroot.attach_api()
            shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
            policy = root / "usr/sbin/policy-rc.d"
            policy.write_text(POLICY_RC_D)
            policy.chmod(0o755)
        except BaseException:
            chroot.close()
            raise
        return chroot

    def attach_api(self) -> None:
        """Mount /proc, /sys (read-only), the host's /dev and the apt archive cache inside."""
        _run(["mount", "-t", "proc", "proc", str(self.root / "proc")])
        _run(["mount", "-t", "sysfs", "-o", "ro", "sysfs", str(self.root / "sys")])
        _run(["mount", "--rbind", "/dev", str(self.root / "dev")])
        _run(["mount", "--make-rslave", str(self.root / "dev")])
        _run(["mount", "--bind", str(self.archives), str(self.root / "var/cache/apt/archives")])

    def detach_api(self) -> None:
        """Undo :meth:`attach_api` (systemd-nspawn mounts its own and refuses a populated /dev)."""
        for inside in self.API_MOUNTS:
            unmount_below(self.root / inside)

    def close(self) -> None:
        unmount_below(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def path(self, inside: str) -> Path:
        """The host path of ``inside`` (an absolute path in the chroot)."""
        return self.root / inside.lstrip("/")

    def argv(self, *command: str, user: str | None = None, env: dict[str, str] | None = None) -> list[str]:
        """``chroot`` argv running ``command`` inside as ``user``, with a clean environment plus ``env``."""
        spec = [f"--userspec={user}:{user}"] if user else []
        clean = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        assignments = [f"{key}={value}" for key, value in {**clean, **(env or {})}.items()]
        return ["chroot", *spec, str(self.root), "env", "-i", *assignments, *command]

    def run(self, *command: str, check: bool = True, timeout: float = 600, user: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside; output captured. Raises AssertionError with it if ``check`` fails."""
        done = subprocess.run(self.argv(*command, user=user), capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def apt_install(self, *what: str) -> subprocess.CompletedProcess[str]:
        """``apt-get install`` (recommends included, like a person's ``apt install``); if the mirror
        moved on since the cached lists were fetched, update them and try once more."""
        command = ("apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0", *what)
        done = self.run(*command, check=False, timeout=900)
        if done.returncode != 0 and ("404" in done.stdout + done.stderr or "Unable to fetch" in done.stderr):
            self.run("apt-get", "update", "-qq", timeout=300)
            done = self.run(*command, check=False, timeout=900)
        if done.returncode != 0:
            raise AssertionError(f"apt-get install {' '.join(what)} failed:\n{done.stdout}\n{done.stderr}")
        return done


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def free_disk_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
