"""The labgrid kind: a board of a shared lab, reached through a place of a labgrid-coordinator.

A boards.yaml entry `transport: labgrid` (or `--board lg:tags=...`) names a place, or tags any free place must
have. `reserve()` acquires the places (never one another client holds: a taken place is waited for up to the
entry's `wait` seconds, else skipped with a line saying who holds it), turns each into a board of the kind its
resources call for, and releases them all on every way out (an error, Ctrl-C):

    NetworkService     -> ssh     (address, port, username from the resource; key, remote_dir, prefix from the entry)
    NetworkSerialPort  -> serial  (rfc2217://host:port?ign_set_control, or socket://host:port for protocol raw)

A place may carry a tag target=T naming the kit's target (targets/T.yaml); a place whose target differs from the
board's is not used. While a place is held, an SSH deploy asks the coordinator before every remote step whether
the place is still ours: a coordinator that went away (or gave the place to someone else) stops the deploy before
its next step, so the device's `current` stays on the previous release (the SSH kind's atomic switch).

The coordinator is spoken to with labgrid's own client session (labgrid.remote.client.ClientSession, gRPC), on an
event loop of its own in a background thread, shared by every board of the same coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Board, ConfigError
from ..extras import require
from .base import BeforeStep, Device, DeviceError, RunResult, SmokeResult, Stream

ANSWER_TIMEOUT = 10.0  # seconds the coordinator has to answer one request
POLL = 0.5  # seconds between looks at the places while waiting for a free one


class LabError(DeviceError):
    """The lab could not give a board: coordinator unreachable, no such place, none free, or the place was lost."""


def _from_labgrid(record: logging.LogRecord) -> bool:
    return f"{os.sep}labgrid{os.sep}" not in record.pathname


class Lab:
    """One client session with a coordinator, its event loop running in a daemon thread."""

    def __init__(self, address: str):
        require("labgrid.remote.client", "lab", "a labgrid board")
        # labgrid's client logs to the root logger ("coordinator became unavailable"); the kit says what
        # happened in its own one line, so the root logger drops the records labgrid's modules log there
        root = logging.getLogger()
        if _from_labgrid not in root.filters:
            root.addFilter(_from_labgrid)
        self.address = address
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name=f"labgrid {address}", daemon=True).start()
        self.session: Any = None
        try:
            self.session = self._call(self._start(), "connecting")
        except LabError:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise

    async def _start(self) -> Any:
        from labgrid.remote.client import ClientSession
        from labgrid.util.proxy import proxymanager

        # created on the loop's thread: the gRPC channel belongs to the loop it is made on
        session = ClientSession(proxymanager.get_grpc_address(self.address, default_port=20408), self.loop)
        await session.start()
        return session

    def _call(self, coroutine: Any, doing: str, timeout: float = ANSWER_TIMEOUT) -> Any:
        from labgrid.remote.client import Error as ServerError

        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except LabError:  # said already, naming the coordinator
            raise
        except TimeoutError:
            future.cancel()
            raise LabError(f"labgrid coordinator {self.address}: no answer within {timeout:g} s ({doing})") from None
        except ServerError as exc:
            raise LabError(f"labgrid coordinator {self.address}: {doing} failed: {exc}") from None
        except Exception as exc:  # grpc.aio.AioRpcError and the like: the coordinator refused or went away
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise LabError(f"labgrid coordinator {self.address}: {doing} failed: {details}") from None

    @property
    def me(self) -> str:
        """Who this client is to the coordinator (host/user): what a place we acquired says in `acquired`."""
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    async def _fresh(self) -> dict:
        """The places as the coordinator has them now (after a round trip), or LabError when it is gone."""
        # a session whose stream ended answers no sync: ask only while it is up
        if self.session.stopping.is_set() or not await self.session.sync_with_coordinator():
            raise LabError(f"labgrid coordinator {self.address} went away")
        return {name: (dict(p.tags), p.acquired, p.reservation, list(p.acquired_resources))
                for name, p in self.session.places.items()}

    def places(self) -> dict[str, tuple[dict, str | None, str | None, list]]:
        """name -> (tags, acquired by, reservation, acquired resources)."""
        return self._call(self._fresh(), "reading the places")

    def acquire(self, place: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        async def go() -> None:
            await self.session.stub.AcquirePlace(pb2.AcquirePlaceRequest(placename=place))
            await self.session.sync_with_coordinator()

        self._call(go(), f"acquiring place {place}")

    def release(self, place: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        async def go() -> None:
            await self.session.stub.ReleasePlace(pb2.ReleasePlaceRequest(placename=place))
            await self.session.sync_with_coordinator()

        self._call(go(), f"releasing place {place}")

    def holds(self, place: str, timeout: float) -> bool:
        """Whether the coordinator still has `place` acquired by us (a round trip; LabError when it is gone)."""
        return self._call(self._fresh(), f"checking place {place}", timeout).get(place, ({}, None))[1] == self.me

    def resources(self, place: str) -> dict[str, dict]:
        """The acquired place's resources: class -> the resource's parameters (the first of each class)."""

        async def read() -> dict[str, dict]:
            found: dict[str, dict] = {}
            for exporter, group, cls, name in self.session.places[place].acquired_resources:
                entry = self.session.resources.get(exporter, {}).get(group, {}).get(name)
                if entry is not None and entry.avail:
                    found.setdefault(cls, dict(entry.args))
            return found

        return self._call(read(), f"reading the resources of place {place}")

    def close(self) -> None:
        async def stop() -> None:
            await self.session.stop()
            await self.session.close()

        with contextlib.suppress(LabError):
            self._call(stop(), "closing the session", timeout=2.0)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _matches(tags: dict, wanted: tuple[str, ...], target: str) -> bool:
    if tags.get("target", target) != target:
        return False
    for item in wanted:
        key, has_value, value = item.partition("=")
        if key not in tags or (has_value and tags[key] != value):
            return False
    return True


@dataclasses.dataclass
class _Held:
    lab: Lab
    place: str
    lost: str = ""  # why the place is no longer ours, once we know


_held: dict[str, _Held] = {}  # board name (lg-<place>) -> the place this process holds for it
_held_lock = threading.Lock()


def _concrete(board: Board, lab: Lab, place: str) -> Board:
    """The board the place's resources make: ssh for a NetworkService, serial for a NetworkSerialPort."""
    lg = board.labgrid
    assert lg is not None
    found = lab.resources(place)
    name = f"lg-{place}"
    settings = dataclasses.replace(lg, place=place, tags=())
    if board.target.firmware is not None:
        port = found.get("NetworkSerialPort")
        if port is None:
            raise LabError(f"place {place}: no NetworkSerialPort, which a {board.target.name} (firmware) board "
                           f"needs (found: {', '.join(found) or 'no available resource'})")
        # as labgrid's SerialDriver opens it: ser2net on a line without modem control never confirms the
        # RFC 2217 SET-CONTROL option, so the client does not wait for it (pyserial's ign_set_control)
        url = (f"socket://{port['host']}:{port['port']}" if port.get("protocol") == "raw"
               else f"rfc2217://{port['host']}:{port['port']}?ign_set_control")
        serial = dataclasses.replace(lg.serial, port=url,
                                     baudrate=int(port.get("speed") or 115200))
        return dataclasses.replace(board, name=name, transport="serial", serial=serial, labgrid=settings)
    service = found.get("NetworkService")
    if service is None:
        raise LabError(f"place {place}: no NetworkService, which a {board.target.name} (Linux) board needs "
                       f"(found: {', '.join(found) or 'no available resource'})")
    if lg.ssh is None:
        raise ConfigError(f"board {board.name}: place {place} is an SSH board (NetworkService): give the entry "
                          "ssh: settings (key or agent, known_hosts, remote_dir)")
    ssh = dataclasses.replace(lg.ssh, host=service["address"], port=int(service.get("port") or 22),
                              user=service["username"], remote_dir=lg.ssh.remote_dir.replace("{place}", place))
    return dataclasses.replace(board, name=name, transport="ssh", ssh=ssh, labgrid=settings)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _acquire(board: Board, lab: Lab, count: int, say: Callable[[str], None]) -> list[str]:
    """Up to `count` places for the board, acquired; waits up to the entry's `wait` for enough free ones."""
    lg = board.labgrid
    assert lg is not None
    deadline = time.monotonic() + lg.wait
    got: list[str] = []
    told: set[str] = set()
    while True:
        places = lab.places()
        if lg.place and lg.place not in places:
            raise LabError(f"labgrid coordinator {lab.address}: no place {lg.place} (places: "
                           f"{', '.join(sorted(places)) or 'none'})")
        wanted = [lg.place] if lg.place else sorted(n for n, (tags, *_r) in places.items()
                                                    if _matches(tags, lg.tags, board.target.name))
        if not wanted:
            raise LabError(f"labgrid coordinator {lab.address}: no place has the tags {', '.join(lg.tags)} "
                           f"(and target={board.target.name} or no target tag)")
        for name in wanted:
            if len(got) == count or name in got:
                continue
            _tags, holder, reservation, _res = places[name]
            if holder or reservation:
                if name not in told:
                    told.add(name)
                    who = f"acquired by {holder}" if holder else "reserved"
                    say(f"labgrid: place {name} is {who}: "
                        + (f"waiting up to {lg.wait:g} s" if lg.wait else "skipped"))
                continue
            try:
                lab.acquire(name)
            except LabError as exc:  # taken between our look and our request: the coordinator decides
                say(f"labgrid: place {name} could not be acquired ({str(exc).split(': ')[-1]}): skipped")
                continue
            got.append(name)
        if len(got) == count or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    if not got:
        raise LabError(f"labgrid coordinator {lab.address}: no free place for board {board.name} "
                       f"({'place ' + lg.place if lg.place else 'tags ' + ', '.join(lg.tags)}): every one is taken")
    if len(got) < count:
        say(f"labgrid: {len(got)} of {count} places free: using {', '.join(got)}")
    return got


@contextlib.contextmanager
def reserve(boards: list[Board], count: int | None = None,
            say: Callable[[str], None] = _say) -> Iterator[list[Board]]:
    """The boards with every labgrid board replaced by the places acquired for it (up to `count` each; one by
    default), named lg-<place>; every place is released when the block ends, however it ends."""
    if count is not None and not any(b.labgrid is not None for b in boards):
        raise ConfigError("--count goes with a labgrid board (transport: labgrid, or --board lg:tags=...)")
    labs: dict[str, Lab] = {}
    mine: list[tuple[Lab, str, str]] = []
    try:
        out: list[Board] = []
        for board in boards:
            if board.labgrid is None or board.transport != "labgrid":  # not a lab's, or a place already held
                out.append(board)
                continue
            address = board.labgrid.coordinator
            if address not in labs:
                labs[address] = Lab(address)
            lab = labs[address]
            for place in _acquire(board, lab, count or 1, say):
                concrete = _concrete_held(board, lab, place, mine)
                out.append(concrete)
        yield out
    finally:
        for lab, place, name in mine:
            with _held_lock:
                held = _held.pop(name, None)
            try:
                lab.release(place)
            except LabError as exc:
                if held is None or not held.lost:  # a lost coordinator was already reported by the deploy
                    say(f"labgrid: {exc}; release it with `labgrid-client -x {lab.address} -p {place} release` "
                        "once the coordinator is back")
        for lab in labs.values():
            lab.close()


def _concrete_held(board: Board, lab: Lab, place: str, mine: list[tuple[Lab, str, str]]) -> Board:
    """The place's board, registered as held (and listed in `mine` for the release) before anything can fail."""
    name = f"lg-{place}"
    with _held_lock:
        _held[name] = _Held(lab, place)
    mine.append((lab, place, name))
    return _concrete(board, lab, place)


class LabgridDevice:
    """A device of a held place: the kind its resources made (ssh, serial), and a deploy that stops when the
    place is no longer ours."""

    def __init__(self, inner: Device, held: _Held, on_close: Callable[[], None] | None = None):
        self.inner = inner
        self.held = held
        self.name = inner.name
        self.kind = inner.kind
        self.emulated = inner.emulated
        self._on_close = on_close

    def _check(self, what: str) -> None:
        h = self.held
        try:
            ours = h.lab.holds(h.place, timeout=5.0)
        except LabError as exc:
            h.lost = str(exc)
            raise LabError(f"board {self.name}: {exc} (before: {what}); place {h.place} is no longer held, so the "
                           "deploy stopped") from None
        if not ours:
            h.lost = "taken"
            raise LabError(f"board {self.name}: place {h.place} is no longer ours on the coordinator {h.lab.address} "
                           f"(before: {what}), so the deploy stopped")

    def deploy(self, model: Path, version: dict, before_step: BeforeStep | None = None) -> dict:
        def step(what: str) -> None:
            if before_step is not None:
                before_step(what)
            self._check(what)

        self._check("the deploy")
        return self.inner.deploy(model, version, step)

    def info(self, model: Path) -> dict:
        return self.inner.info(model)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1) -> RunResult:
        return self.inner.run(model, inputs, batch)

    def profile(self, model: Path, runs: int, program: Path) -> dict:
        return self.inner.profile(model, runs, program)

    def stream(self, model: Path) -> Stream:
        return self.inner.stream(model)

    def test(self, model: Path) -> SmokeResult:
        return self.inner.test(model)

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        return self.inner.trace(model, inputs)

    def status(self) -> dict:
        return self.inner.status()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None

    def __enter__(self) -> LabgridDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_labgrid(board: Board, open_inner: Callable[[Board], Device]) -> Device:
    """A labgrid board as a Device: a place reserve() holds, or (opened on its own, e.g. by `invoke run`) one
    acquired now and released at close()."""
    with _held_lock:
        held = _held.get(board.name)
    if held is not None and board.transport != "labgrid":
        return LabgridDevice(open_inner(board), held)
    own = reserve([board])
    concrete = own.__enter__()[0]
    try:
        with _held_lock:
            held = _held[concrete.name]
        return LabgridDevice(open_inner(concrete), held, on_close=lambda: own.__exit__(None, None, None))
    except BaseException:
        own.__exit__(*sys.exc_info())
        raise
