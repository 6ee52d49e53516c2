"""imapsync as a child process: its arguments, and one run that can be read and stopped.

Nothing here knows about jobs in the database or about Slack: a runner builds the
arguments from a job, starts an `ImapsyncProcess`, reads its lines and stops it.

- Passwords never touch argv or the disk: each is written to an anonymous in-memory file
  (memfd) that only the child inherits, named to imapsync as `--passfile1=/dev/fd/N`.
  When the worker dies, the kernel frees them with it. An access token for a source that
  signs in with an app or a service account goes the same way (`--oauthaccesstoken1=/dev/fd/N`,
  which imapsync 2.229 reads as a file whose first line is the token).
- TLS is verified on both sides (imapsync does not by default): SSL_verify_mode=1, the
  system's CA bundle plus IMAP_CA_FILE, and the host name the admin gave.
- `--addheader` always: a message with neither Message-Id nor Received (drafts, imported
  mail) is otherwise left behind with exit 0; with it, its copy gets "Message-Id:
  <UID@imapsync>" (the source UID), which purelyops.mail_check looks for.
- Every value is passed as --option=value, so none can be read as an option of its own.
- A source at a known mail provider (purelyops.providers) gets imapsync's own options for
  it first: imapsync lets later options override what they set, and ours (the checked
  address, TLS verification, the passfiles) come after.
- It runs in a clean private directory of its own (its pidfile and tmpdir there, no
  options_extra.txt to pick up), in a process group of its own, with stdin from
  /dev/null, and dies with its worker (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ipaddress
import os
import queue
import signal
import ssl
import subprocess
import threading
from dataclasses import dataclass

from purelyops.settings import Settings

SECURITY_FLAGS = {"tls": "ssl", "starttls": "tls"}
# imapsync's options for a source at a mail provider (keys of purelyops.providers.PROVIDERS),
# as its documentation (FAQ.d) recommends. They go before ours, which override what they set.
PROVIDER_OPTIONS: dict[str, tuple[str, ...]] = {
    # imap.gmail.com over TLS; 40 kB/s after the first 3 GB (Gmail's daily IMAP download limit);
    # --automap; --skipcrossduplicates (a message under several labels is copied once); the
    # "[Gmail]/" prefix dropped from folder names; "[Gmail]/All Mail" last (FAQ.Gmail.txt).
    "gmail": ("--gmail1",),
    # outlook.office365.com over TLS; leaves out the folder "Files" (FAQ.Office365.txt).
    "microsoft365": ("--office1",),
    # FAQ.Yahoo.txt and FAQ.iCloud.txt give only the host (and an app password); there is no
    # FAQ for Fastmail or Zoho. --automap maps their Sent, Drafts, Junk, Trash and Archive to
    # PurelyMail's by their special-use flags (or usual names), as FAQ.Folders_Mapping.txt advises
    # before hand-written --regextrans2 rules ("Sent Messages" on iCloud becomes "Sent").
    "yahoo": ("--automap",),
    "icloud": ("--automap",),
    "fastmail": ("--automap",),
    "zoho": ("--automap",),
}
TEST_ENV_PREFIX = "IMAPSYNC_STANDIN_"  # how tests steer the stand-in; nothing else of ours is passed on


@dataclass(frozen=True)
class Endpoint:
    host: str  # what imapsync connects to: for a source, the address that was checked
    port: int
    user: str
    security: str  # "tls" (on connect), "starttls" or "none"
    name: str = ""  # the host name the certificate must be for (and SNI), when `host` is its address
    provider: str = ""  # a mail provider (purelyops.providers) for a source: imapsync's options for it

    @property
    def tls_name(self) -> str:
        return self.name or self.host


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    exclude: str | None = None
    max_age_days: int | None = None


def system_ca_bundle() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def ca_bundle(settings: Settings, workdir: str) -> str | None:
    """The CA certificates imapsync trusts: the system's, plus IMAP_CA_FILE when set."""
    system = system_ca_bundle()
    if not settings.imap_ca_file:
        return system
    path = os.path.join(workdir, "ca-bundle.pem")
    with open(path, "w", encoding="ascii", errors="replace") as bundle:
        if system:
            with open(system, encoding="ascii", errors="replace") as handle:
                bundle.write(handle.read())
            bundle.write("\n")
        with open(settings.imap_ca_file, encoding="ascii", errors="replace") as handle:
            bundle.write(handle.read())
    return path


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _side(n: str, end: Endpoint, passfile: str, ca_file: str | None) -> list[str]:
    args = [f"--host{n}={end.host}", f"--port{n}={end.port}", f"--user{n}={end.user}", f"--passfile{n}={passfile}"]
    flag = SECURITY_FLAGS.get(end.security)
    if flag is None:
        return args + [f"--nossl{n}", f"--notls{n}"]
    args.append(f"--{flag}{n}")
    verify = {"SSL_verify_mode": "1", "SSL_verifycn_scheme": "imap", "SSL_verifycn_name": end.tls_name}
    if not _is_address(end.tls_name):
        verify["SSL_hostname"] = end.tls_name  # SNI: the server picks its certificate by name
    if ca_file:
        verify["SSL_ca_file"] = ca_file
    return args + [f"--sslargs{n}={key}={value}" for key, value in verify.items()]


def argv(settings: Settings, source: Endpoint, dest: Endpoint, passfiles: tuple[str, str], workdir: str,
         options: Options, ca_file: str | None) -> list[str]:
    args = [settings.imapsync_bin, *PROVIDER_OPTIONS.get(source.provider, ()),
            *_side("1", source, passfiles[0], ca_file), *_side("2", dest, passfiles[1], ca_file),
            "--addheader", "--nolog", "--noreleasecheck", f"--tmpdir={workdir}",
            f"--pidfile={os.path.join(workdir, 'imapsync.pid')}"]
    if options.dry_run:
        args.append("--dry")
    if options.exclude:
        args.append(f"--exclude={options.exclude}")
    if options.max_age_days:
        args.append(f"--maxage={options.max_age_days}")
    return args


def destination(settings: Settings, user: str) -> Endpoint:
    return Endpoint(settings.purelymail_imap_host, settings.purelymail_imap_port, user,
                    "tls" if settings.purelymail_imap_tls else "none")


def _die_with_parent() -> None:
    """In the child, before imapsync starts: if the worker dies (even by SIGKILL), the
    kernel kills imapsync too (Linux), so no copy goes on with nobody watching it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _secret_fd(name: str, value: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, value.encode())
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


class ImapsyncProcess:
    """One imapsync run. Its output is drained by a thread of its own into an unbounded
    queue, so imapsync never stalls on a full pipe whatever its reader is doing."""

    def __init__(self, build_argv, passwords: tuple[str, str], workdir: str, *,
                 access_token: str | None = None) -> None:
        """`build_argv(passfile1, passfile2)` gives the arguments for the given passfile names.
        `access_token`: the source logs in with it (XOAUTH2), handed over as
        --oauthaccesstoken1=/dev/fd/N, a file whose first line imapsync reads at login; the
        source's password is then a placeholder (imapsync 2.229 wants one all the same)."""
        contents = [("pass1", passwords[0]), ("pass2", passwords[1])]
        if access_token is not None:
            contents.append(("token1", access_token + "\n"))
        fds: list[int] = []  # closed here whatever fails: only the child keeps them
        try:
            for name, value in contents:
                fds.append(_secret_fd(name, value))
            args = build_argv(*(f"/dev/fd/{fd}" for fd in fds[:2]))
            if access_token is not None:
                args.append(f"--oauthaccesstoken1=/dev/fd/{fds[2]}")
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "LANG": "C.UTF-8",
                   **{k: v for k, v in os.environ.items() if k.startswith(TEST_ENV_PREFIX)}}
            self.process = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                start_new_session=True, env=env, text=True, encoding="utf-8", errors="replace", pass_fds=fds,
                preexec_fn=_die_with_parent)
        finally:
            for fd in fds:
                os.close(fd)
        self.pid = self.process.pid
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        threading.Thread(target=self._read, daemon=True, name=f"imapsync-{self.pid}").start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def next_line(self, timeout: float) -> str:
        """The next line of output, or "" when none came within `timeout` (or at the end)."""
        if self._eof:
            return ""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return ""
        if line is None:
            self._eof = True
            return ""
        return line

    @property
    def output_ended(self) -> bool:
        return self._eof

    @property
    def ended(self) -> bool:
        """All output read and the process gone."""
        return self._eof and self.process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def signal(self, signum: int) -> None:
        """To imapsync's whole process group."""
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass
