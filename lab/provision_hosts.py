"""The tutorial's host setup on real hosts (`python -m lab provision`): idempotent, with a dry run.

`plan()` turns the tutorial's host steps into an ordered list of Steps; each reads the host's
current state (`check()`), knows its exact change (a file's full new content, or an argv) and
applies it. `run()` first checks every host (reachable, root, systemd), then applies only the
unsatisfied steps, or in a dry run prints per host what it would do and changes nothing.

One deliberate reorder: the tutorial runs `calicoctl node` before it writes Docker's
override.conf and restarts Docker; here Docker gets its cluster store first (on every host),
so calico-libnetwork starts against a Docker that already has one and is not restarted
under it. Commands always go as argv lists; scripts take values as "$1", never pasted in.
"""
from __future__ import annotations

import concurrent.futures
import difflib
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from . import paths, provision
from .errors import LabError
from .image import IMAGE
from .schema import ROLE_CALICO_NODE
from .transport import Host, LocalNamespaceHost

Log = Callable[[str], None]

ETCD_CONF = "/etc/etcd/etcd.conf"
DOCKER_SOCKET = "/usr/lib/systemd/system/docker.socket"
DOCKER_OVERRIDE = "/etc/systemd/system/docker.service.d/override.conf"
UNIT_DIR = "/usr/lib/systemd/system"
BASHRC = "/root/.bashrc"          # the tutorial's shells are root's
CALICO_UNITS = ("calico-node", "calico-libnetwork")
BASE_IMAGE = "centos"
DOCKERFILE = "FROM centos\nENV LANG en_US.UTF-8\n\nRUN yum install -y nc telnet\n"
NO_SYSTEMCTL, NOT_BOOTED = "systemctl not found", "systemd is not running (no /run/systemd/system)"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class ProvisionTarget:
    hosts: tuple[tuple[str, str, tuple[str, ...]], ...]   # (name, ip, roles)
    etcd_host: str | None                                  # None: etcd runs elsewhere
    etcd_authority: str                                    # host:port


def from_inventory(inv) -> ProvisionTarget:
    """Read a lab.inventory.Inventory by duck typing (hosts[i].name/.ip/.roles, etcd.*)."""
    url = getattr(inv.etcd, "url", "") or ""
    if url.startswith("https:"):
        raise LabError(f"provisioning sets up the tutorial's plain-HTTP etcd; this inventory's "
                       f"etcd is {url}")
    return ProvisionTarget(tuple((h.name, h.ip, tuple(h.roles)) for h in inv.hosts),
                           inv.etcd.host, inv.etcd.authority)


# -- file contents: pure functions of the tutorial's text -------------------------------------

# host:port as lab/inventory.py validates it: what may go into a shell-read file, etcd.conf
# and dockerd's ExecStart (no space, quote, $, %, backslash or anything else they interpret)
AUTHORITY = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")


def checked_authority(authority: str) -> str:
    if not AUTHORITY.fullmatch(authority):
        raise LabError(f"etcd authority {authority!r} is not host:port (an IP address or DNS "
                       "name and a port): fix etcd.endpoints in the inventory")
    return authority


def set_line(text: str | None, key: re.Pattern, line: str, after: re.Pattern | None = None) -> str:
    """Every line matching `key` becomes `line`; with none, `line` goes after the first line
    matching `after` (a commented default), else at the end. All other lines are kept."""
    lines = (text or "").splitlines()
    hits = [i for i, old in enumerate(lines) if key.match(old)]
    for i in hits:
        lines[i] = line
    if not hits:
        anchor = next((i for i, old in enumerate(lines) if after and after.match(old)), None)
        lines.insert(len(lines) if anchor is None else anchor + 1, line)
    return "\n".join(lines) + "\n"


def etcd_conf(current: str | None, listen_url: str, advertise_url: str) -> str:
    """The tutorial's edit of /etc/etcd/etcd.conf: the two client-URL lines, the rest kept."""
    for name, url in (("ETCD_LISTEN_CLIENT_URLS", listen_url),
                      ("ETCD_ADVERTISE_CLIENT_URLS", advertise_url)):
        current = set_line(current, re.compile(rf"\s*{name}="), f'{name}="{url}"',
                           re.compile(rf"\s*#\s*{name}="))
    return current


def bashrc(current: str | None, authority: str) -> str:
    """The tutorial's `export ETCD_AUTHORITY=…` in root's .bashrc, for calicoctl (quoted: the
    shell reads this file; a plain host:port stays as the tutorial writes it)."""
    return set_line(current, re.compile(r"\s*export\s+ETCD_AUTHORITY="),
                    f"export ETCD_AUTHORITY={shlex.quote(authority)}")


def docker_socket() -> str:
    """The tutorial's docker.socket fix for docker 1.12.1 on CentOS 7.2."""
    return ("[Unit]\nDescription=Docker Socket for the API\nPartOf=docker.service\n\n"
            "[Socket]\nListenStream=/var/run/docker.sock\nSocketMode=0660\nSocketUser=root\n"
            "SocketGroup=docker\n\n[Install]\nWantedBy=sockets.target\n")


def docker_override(authority: str) -> str:
    return ("[Service]\nExecStart=\n"
            "ExecStart=/usr/bin/dockerd -H unix:///var/run/docker.sock "
            f"--cluster-store=etcd://{authority}\n")


def calico_unit(name: str) -> str:
    """calico-node.service / calico-libnetwork.service as the tutorial writes them: they only
    start the containers `calicoctl node` created (those carry the IP and etcd authority)."""
    needs = "docker.service" + (" calico-node.service" if name == "calico-libnetwork" else "")
    return (f"[Unit]\nDescription={name}\nRequires={needs}\nAfter={needs}\n\n"
            f"[Service]\nRestart=always\nExecStart=/usr/bin/docker start -a {name}\n"
            f"ExecStop=/usr/bin/docker stop -t 2 {name}\n\n[Install]\nWantedBy=multi-user.target\n")


# -- reading a host's state -------------------------------------------------------------------

def _run(host: Host, argv: Sequence[str], timeout: float = 60, input: str | None = None):
    return host.run(list(argv), timeout=timeout, input=input)


def read_text(host: Host, path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    res = _run(host, ["sh", "-c", 'if [ -e "$1" ]; then exec cat -- "$1"; fi; exit 3', "sh", path])
    if res.rc == 3:
        return None
    if not res.ok:
        raise LabError(f"{host.name}: cannot read {path}: {res.stderr.strip() or f'exit {res.rc}'}")
    return res.stdout


def write_text(host: Host, path: str, text: str) -> None:
    """Replace the file in one rename (a half-written unit or conf is never seen), keeping
    the mode of the file it replaces (0644 for a new one)."""
    script = ('mode=$(stat -c %a -- "$1" 2>/dev/null || echo 644) && '
              'mkdir -p -- "$(dirname -- "$1")" && cat > "$1.calab-new" && '
              'chmod "$mode" -- "$1.calab-new" && mv -f -- "$1.calab-new" "$1"')
    _ok(host, ["sh", "-c", script, "sh", path], input=text)


def _ok(host: Host, argv: Sequence[str], timeout: float = 120, input: str | None = None) -> None:
    res = _run(host, argv, timeout, input)
    if not res.ok:
        out = (res.stdout + res.stderr).strip().splitlines()
        raise LabError(f"{host.name}: `{shlex.join(argv)}` failed (exit {res.rc}): "
                       f"{out[-1] if out else 'no output'}")


def is_state(host: Host, verb: str, unit: str, want: str) -> bool:
    """`systemctl is-enabled|is-active UNIT` prints `want`."""
    return _run(host, ["systemctl", verb, unit]).stdout.strip() == want


def units_loaded(host: Host, units: Sequence[str]) -> bool:
    """systemd has loaded every unit and none has changed on disk since (no reload due)."""
    for unit in units:
        res = _run(host, ["systemctl", "show", "--property=LoadState",
                          "--property=NeedDaemonReload", unit])
        props = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
        if not res.ok or props != {"LoadState": "loaded", "NeedDaemonReload": "no"}:
            return False
    return True


def cluster_store(host: Host) -> str | None:
    """What the running Docker uses (`docker info` text: docker 1.12 has no --format)."""
    for line in _run(host, ["docker", "info"]).stdout.splitlines():
        if line.strip().startswith("Cluster Store:"):
            return line.split(":", 1)[1].strip()
    return None


def containers_running(host: Host, names: Sequence[str]) -> bool:
    res = _run(host, ["docker", "inspect", "--format", "{{.State.Running}}", *names])
    return res.ok and res.stdout.split() == ["true"] * len(names)


def image_present(host: Host, image: str) -> bool:
    return _run(host, ["docker", "inspect", "--type=image", image]).ok


def has_command(host: Host, command: str) -> bool:
    return _run(host, ["sh", "-c", 'command -v "$1" >/dev/null 2>&1', "sh", command]).ok


# -- steps ------------------------------------------------------------------------------------

@dataclass(eq=False, kw_only=True)
class Step:
    host: Host
    title: str
    triggers: tuple[Step, ...] = ()   # if one of these changes in this run, so does this one
    needs: Callable[[], str | None] = lambda: None   # why it cannot be applied here, if so

    @property
    def what(self) -> str:
        """The file or command line this step is about."""
        raise NotImplementedError

    def check(self) -> bool:
        """Is the host already in this step's end state?"""
        raise NotImplementedError

    def apply(self) -> None:
        raise NotImplementedError

    def preview(self) -> list[str]:
        """The exact change in full, as the dry run shows it."""
        raise NotImplementedError

    def blocker(self) -> str | None:
        return self.needs()


@dataclass(eq=False, kw_only=True)
class FileStep(Step):
    path: str
    render: Callable[[str | None], str]   # current content (None: missing) -> wanted content
    _seen: tuple[str | None, str] | None = field(default=None, init=False, repr=False)

    @property
    def what(self) -> str:
        return self.path

    def new_content(self) -> tuple[str | None, str]:
        current = read_text(self.host, self.path)
        return current, self.render(current)

    def check(self) -> bool:
        # kept for the apply or preview that follows at once (one read, not two, per host)
        self._seen = current, new = self.new_content()
        return current == new

    def _content(self) -> tuple[str | None, str]:
        seen, self._seen = self._seen, None
        return seen or self.new_content()

    def apply(self) -> None:
        write_text(self.host, self.path, self._content()[1])

    def preview(self) -> list[str]:
        current, new = self._content()
        return [f"write {self.path}", *(line.rstrip("\n") for line in difflib.unified_diff(
            (current or "").splitlines(True), new.splitlines(True),
            "/dev/null" if current is None else self.path, self.path))]


@dataclass(eq=False, kw_only=True)
class CommandStep(Step):
    argv: tuple[str, ...]
    satisfied: Callable[[], bool]
    input: str | None = None
    timeout: float = 120

    @property
    def what(self) -> str:
        return f"$ {shlex.join(self.argv)}"

    def check(self) -> bool:
        return self.satisfied()

    def apply(self) -> None:
        _ok(self.host, self.argv, self.timeout, self.input)

    def preview(self) -> list[str]:
        stdin = [f"  | {line}" for line in (self.input or "").splitlines()]
        return [self.what] + (["  with stdin:", *stdin] if stdin else [])


@dataclass(eq=False, kw_only=True)
class CalicoctlNodeStep(CommandStep):
    ip: str
    authority: str

    def apply(self) -> None:
        # the tutorial's command as lab/provision.py types it (same error reporting)
        provision.calicoctl(self.host, "node", f"--ip={self.ip}", "--libnetwork",
                            env={"ETCD_AUTHORITY": self.authority}, timeout=self.timeout)


def _systemctl(host: Host, title: str, *args: str, satisfied: Callable[[], bool],
               triggers: tuple[Step, ...] = ()) -> CommandStep:
    return CommandStep(host=host, title=title, argv=("systemctl", *args), satisfied=satisfied,
                       triggers=triggers)


def _enabled(host: Host, *units: str) -> bool:
    return all(is_state(host, "is-enabled", unit, "enabled") for unit in units)


def plan(target: ProvisionTarget, hosts: Mapping[str, Host], root: str = "/") -> list[Step]:
    """The tutorial's host steps in order: etcd, then Docker on every host, then calico-node
    on its hosts, then the test image. `root` prefixes every file path (tests point it at a
    scratch directory); commands are not affected."""
    names = [name for name, _, _ in target.hosts]
    missing = [n for n in names if n not in hosts]
    if missing:
        raise LabError(f"no connection for host(s) {', '.join(missing)}")
    if target.etcd_host is not None and target.etcd_host not in names:
        raise LabError(f"etcd host {target.etcd_host!r} is not one of the hosts "
                       f"({', '.join(names)})")
    at = lambda path: os.path.join(root, path.lstrip("/"))   # noqa: E731
    auth = checked_authority(target.etcd_authority)
    for name, ip, _ in target.hosts:
        if not re.fullmatch(r"[0-9.]+", ip):
            raise LabError(f"host {name}: ip {ip!r} is not an IPv4 address")
    steps: list[Step] = []
    for name, ip, _ in target.hosts:
        if name == target.etcd_host:
            steps += _etcd_steps(hosts[name], ip, auth, at)
    for name in names:
        steps += _docker_steps(hosts[name], auth, at)
    for name, ip, roles in target.hosts:
        if ROLE_CALICO_NODE in roles:
            steps += _calico_steps(hosts[name], ip, auth, at)
    return steps + [_image_step(hosts[name]) for name in names]


def _etcd_steps(h: Host, ip: str, auth: str, at: Callable[[str], str]) -> list[Step]:
    """Listen on the host's own IP, advertise the authority everyone uses; the port is the
    authority's."""
    port = auth.rsplit(":", 1)[1] if ":" in auth else "2379"
    conf = FileStep(host=h, title="etcd client URLs", path=at(ETCD_CONF),
                    render=lambda cur: etcd_conf(cur, f"http://{ip}:{port}", f"http://{auth}"),
                    needs=lambda: None if has_command(h, "etcd") else
                    "etcd is not installed (the tutorial: yum install etcd)")
    return [conf,
            _systemctl(h, "etcd enabled at boot", "enable", "etcd.service",
                       satisfied=lambda: _enabled(h, "etcd.service")),
            _systemctl(h, "etcd running with this configuration", "restart", "etcd.service",
                       triggers=(conf,),
                       satisfied=lambda: is_state(h, "is-active", "etcd.service", "active"))]


def _docker_steps(h: Host, auth: str, at: Callable[[str], str]) -> list[Step]:
    """The restart is due when a file changed in this run, and also when the running Docker
    lacks the cluster store (a file written by an earlier run that stopped short)."""
    files = (FileStep(host=h, title="docker.socket (the tutorial's fix)", path=at(DOCKER_SOCKET),
                      render=lambda cur: docker_socket()),
             FileStep(host=h, title="Docker's cluster store", path=at(DOCKER_OVERRIDE),
                      render=lambda cur: docker_override(auth)))
    return [*files,
            _systemctl(h, "systemd has read Docker's units", "daemon-reload", triggers=files,
                       satisfied=lambda: units_loaded(h, ["docker.service", "docker.socket"])),
            _systemctl(h, "docker enabled at boot", "enable", "docker.service",
                       satisfied=lambda: _enabled(h, "docker.service")),
            _systemctl(h, f"docker running with --cluster-store=etcd://{auth}", "restart",
                       "docker.service", triggers=files,
                       satisfied=lambda: is_state(h, "is-active", "docker.service", "active")
                       and cluster_store(h) == f"etcd://{auth}")]


def _calico_steps(h: Host, ip: str, auth: str, at: Callable[[str], str]) -> list[Step]:
    units = tuple(FileStep(host=h, title=f"{u}.service", path=at(f"{UNIT_DIR}/{u}.service"),
                           render=lambda cur, u=u: calico_unit(u)) for u in CALICO_UNITS)
    unit_names = [f"{u}.service" for u in CALICO_UNITS]
    return [
        FileStep(host=h, title="ETCD_AUTHORITY for calicoctl", path=at(BASHRC),
                 render=lambda cur: bashrc(cur, auth)),
        CalicoctlNodeStep(
            host=h, title="calico-node and calico-libnetwork running", ip=ip, authority=auth,
            argv=("env", f"ETCD_AUTHORITY={auth}", "calicoctl", "node", f"--ip={ip}",
                  "--libnetwork"),
            timeout=600, satisfied=lambda: containers_running(h, CALICO_UNITS),
            needs=lambda: None if has_command(h, "calicoctl") else
            "calicoctl is not installed (the tutorial: download it to /usr/bin/calicoctl)"),
        *units,
        _systemctl(h, "systemd has read the calico units", "daemon-reload", triggers=units,
                   satisfied=lambda: units_loaded(h, unit_names)),
        _systemctl(h, "calico units enabled at boot", "enable", *unit_names,
                   satisfied=lambda: _enabled(h, *unit_names)),
    ]


def _image_step(h: Host) -> Step:
    return CommandStep(
        host=h, title=f"test image {IMAGE}", argv=("docker", "build", "-t", IMAGE, "-"),
        input=DOCKERFILE, timeout=900, satisfied=lambda: image_present(h, IMAGE),
        needs=lambda: None if image_present(h, BASE_IMAGE) else
        f"the Dockerfile's base image {BASE_IMAGE} is not present and provisioning does not "
        f"pull: `docker pull {BASE_IMAGE}` (or `docker load` it) on {h.name}, then run again")


# -- preflight and run ------------------------------------------------------------------------

PREFLIGHT = """echo "uid=$(id -u)"
for tool in systemctl docker; do
  if command -v "$tool" >/dev/null 2>&1; then echo "$tool=yes"; else echo "$tool=no"; fi
done
if [ -d /run/systemd/system ]; then echo booted=yes; else echo booted=no; fi
"""


def host_problems(host: Host, require_systemd: bool = True) -> list[str]:
    """What keeps this host from being provisioned; [] when nothing does."""
    try:
        res = _run(host, ["sh", "-c", PREFLIGHT], timeout=60)
    except LabError as exc:
        return [f"{UNREACHABLE} ({exc})"]
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    if not res.ok or "booted" not in facts:
        return [f"the preflight check failed (exit {res.rc}): {res.stderr.strip()[:200]}"]
    problems = []
    if facts["uid"] != "0":
        problems.append(f"commands run as uid {facts['uid']}, not root: log in as root or set "
                        "sudo: true for it in the inventory")
    if facts["docker"] != "yes":
        problems.append("docker is not installed (the tutorial: yum install docker-engine)")
    if require_systemd and facts["systemctl"] != "yes":
        problems.append(NO_SYSTEMCTL)
    elif require_systemd and facts["booted"] != "yes":
        problems.append(NOT_BOOTED)
    return problems


def _node_private(path: str) -> bool:
    """Below an embedded node's own /run tmpfs (but not its host-visible run dir)."""
    return path.startswith("/run/") and not path.startswith(f"{paths.RUN}/")


def lab_guard(steps: Sequence[Step]) -> list[tuple[str, str]]:
    """An embedded-lab node shares this machine's /etc, /usr and /root (lab/builder.py gives it
    only a private /run, /etc/docker and /var/log), and `systemctl enable` edits /etc even
    without systemd: a real run there would change this machine, so it is refused."""
    bad: dict[str, str] = {}
    for s in steps:
        if isinstance(s.host, LocalNamespaceHost) and s.host.name not in bad and (
                (isinstance(s, FileStep) and not _node_private(s.path))
                or (isinstance(s, CommandStep) and s.argv[0] == "systemctl")):
            what = s.path if isinstance(s, FileStep) else shlex.join(s.argv)
            bad[s.host.name] = (f"an embedded-lab node shares this machine's /etc and /usr "
                                f"(`{what}` would change this machine)")
    return list(bad.items())


@dataclass
class Summary:
    dry_run: bool
    changed: list[Step] = field(default_factory=list)     # applied, or would be in a dry run
    satisfied: list[Step] = field(default_factory=list)

    def __str__(self) -> str:
        total = len(self.changed) + len(self.satisfied)
        if not self.changed:
            return f"nothing to change: all {total} step(s) already satisfied"
        per_host: dict[str, int] = {}
        for s in self.changed:
            per_host[s.host.name] = per_host.get(s.host.name, 0) + 1
        where = ", ".join(f"{h}: {n}" for h, n in per_host.items())
        verb = "would change" if self.dry_run else "changed"
        return (f"{len(self.changed)} step(s) {verb} ({where}), {len(self.satisfied)} already "
                f"satisfied" + ("; dry run: nothing was changed" if self.dry_run else ""))


def describe(problems: Sequence[tuple[str, str]]) -> str:
    """One line for all hosts: `host: problem, problem; host: problem`."""
    by_host: dict[str, list[str]] = {}
    for name, problem in problems:
        by_host.setdefault(name, []).append(problem)
    text = "; ".join(f"{name}: {', '.join(ps)}" for name, ps in by_host.items())
    if any(p in (NO_SYSTEMCTL, NOT_BOOTED) for _, p in problems):
        text += " (the tutorial's hosts are systemd hosts, CentOS 7)"
    return text


def _refusal(problems: Sequence[tuple[str, str]]) -> LabError:
    return LabError(f"cannot provision, nothing was changed: {describe(problems)}")


def _walk(steps: Sequence[Step], act: Callable[[Step, list[Step], bool], None],
          dry_run: bool) -> Summary:
    """Each step in plan order: due if a trigger changed in this run or its check fails;
    `act(step, due_to, satisfied)` applies or shows it."""
    summary = Summary(dry_run)
    for step in steps:
        due = [t for t in step.triggers if t in summary.changed]
        satisfied = not due and step.check()
        act(step, due, satisfied)
        (summary.satisfied if satisfied else summary.changed).append(step)
    return summary


def _walk_hosts(steps: Sequence[Step], act: Callable[[Step, list[Step], bool], None]) -> Summary:
    """_walk without changes, each host's steps in a thread of its own (triggers never cross
    hosts, so the outcome is the same); the Summary lists steps in plan order."""
    hosts = list({id(s.host): s.host for s in steps}.values())
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        parts = list(pool.map(lambda h: _walk([s for s in steps if s.host is h], act, True), hosts))
    changed = {id(s) for part in parts for s in part.changed}
    return Summary(True, [s for s in steps if id(s) in changed],
                   [s for s in steps if id(s) not in changed])


def run(steps: Sequence[Step], dry_run: bool, log: Log, *, require_systemd: bool = True) -> Summary:
    """Preflight every host, then apply the steps not yet satisfied (or show them: dry run).

    require_systemd=False is for steps that only write files below a scratch root."""
    hosts = list({id(s.host): s.host for s in steps}.values())
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        found = list(pool.map(lambda h: host_problems(h, require_systemd), hosts))
    problems = [(h.name, p) for h, ps in zip(hosts, found) for p in ps]
    if dry_run and any(p.startswith(UNREACHABLE) for _, p in problems):
        raise _refusal(problems)   # nothing to show for a host we cannot read
    problems += lab_guard(steps)
    if dry_run:
        return _show_plan(steps, problems, log)
    if problems:
        raise _refusal(problems)
    # what would change, and whether any of it cannot be done: all before the first change
    pending = _walk_hosts(steps, lambda step, due, ok: None).changed
    blocked = [(s.host.name, b) for s in pending if (b := s.blocker())]
    if blocked:
        raise _refusal(blocked)

    def apply(step: Step, due: list[Step], satisfied: bool) -> None:
        if satisfied:
            return
        if (b := step.blocker()) is not None:   # a state earlier steps brought about
            raise LabError(f"{step.host.name}: {step.title}: {b}")
        log(f"{step.host.name}: {step.title}: {step.what}")
        step.apply()
    summary = _walk(steps, apply, dry_run=False)
    log(str(summary))
    return summary


def _show_plan(steps: Sequence[Step], problems: Sequence[tuple[str, str]], log: Log) -> Summary:
    """Per host, in plan order: each step satisfied (ok), or what it would change and why."""
    lines: dict[str, list[str]] = {s.host.name: [] for s in steps}

    def show(step: Step, due: list[Step], satisfied: bool) -> None:
        out = lines[step.host.name]
        if satisfied:
            note = f"{step.what} as wanted" if isinstance(step, FileStep) else f"skips {step.what}"
            out.append(f"  ok      {step.title}  ({note})")
            return
        why = f"  [after {', '.join(t.what for t in due)} changes]" if due else ""
        first, *rest = step.preview()
        out.append(f"  change  {step.title}: {first}{why}")
        out += [f"            {line}" for line in rest]
        if (b := step.blocker()) is not None:
            out.append(f"            ! cannot yet: {b}")
    summary = _walk_hosts(steps, show)
    if problems:
        log(f"a real run would refuse: {describe(problems)}")
    for host, host_lines in lines.items():
        log(f"{host}:")
        for line in host_lines:
            log(line)
    log(str(summary))
    return summary


def main_provision(inventory_path: str, dry_run: bool, log: Log = print) -> int:
    """`python -m lab provision --inventory FILE [--dry-run]`."""
    from .inventory import load_inventory   # late: only provisioning needs SSH
    from .ssh import SshHost, close_all
    inv = load_inventory(inventory_path)
    hosts = {h.name: SshHost(h.name, h.address, h.ssh) for h in inv.hosts}
    try:
        run(plan(from_inventory(inv), hosts), dry_run, log)
    finally:
        close_all()
    return 0
