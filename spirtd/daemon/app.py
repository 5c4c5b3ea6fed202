"""The peer daemon: wires the store, the guard, the gRPC server, membership
and Control together (with health, reflection and, when configured, the
metrics endpoint), and takes them down in reverse order.

    async with Daemon(config) as daemon:
        await stop.wait()           # SIGTERM: leave, then close everything
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import re
from pathlib import Path

import grpc

from spirtd import __version__
from spirtd.api.spirt.v1 import (
    control_pb2,
    control_pb2_grpc,
    gradients_pb2,
    gradients_pb2_grpc,
    heartbeat_pb2,
    heartbeat_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
)
from spirtd.clock import Clock, SystemClock
from spirtd.daemon import node_state, training
from spirtd.daemon.config import DaemonConfig, format_address, parse_address
from spirtd.daemon.control import ControlService, StateAges
from spirtd.daemon.cluster import AliveMembers, ClusterPeers, GrpcJobReplicas, JobReplicationService
from spirtd.daemon.exchange_grpc import GradientExchangeService, GrpcExchangeTransport
from spirtd.daemon.metrics import DaemonMetrics, MetricSources, RoundFollower
from spirtd.exchange.driver import ExchangeDriver
from spirtd.daemon.membership_grpc import GrpcTransport, HeartbeatService, MembershipService, RevocationSpreader
from spirtd.errors import ConfigError, MembershipError, SecurityError
from spirtd.jobs.manager import JobManager
from spirtd.membership.driver import MembershipDriver
from spirtd.membership.events import BOOT_META, EventKind, MemberEvent, RestartDetector
from spirtd.membership.formulas import retransmit_limit
from spirtd.membership.messages import Member
from spirtd.membership.state import MembershipState
from spirtd.membership.subscriptions import Subscription
from spirtd.metrics.endpoint import MetricsEndpoint
from spirtd.rpc.counters import Counters
from spirtd.rpc.guard import Guard
from spirtd.rpc.health import HEALTH_SERVICE, Health
from spirtd.rpc.reflection import add_reflection
from spirtd.rpc.refusals import RefusalLog
from spirtd.rpc.server import ChannelPool, ConnectionLimits, RpcServer, peer_channel_options
from spirtd.rpc.tls import channel_credentials, server_credentials
from spirtd.security.ca import CRL_FILE
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Identity, Role
from spirtd.security.revocation import RevocationList
from spirtd.store.blocking import store_env
from spirtd.store.connect import connect, read_password_file
from spirtd.store.embedded import EmbeddedStore
from spirtd.tasks import TaskSet

_log = logging.getLogger("spirtd")
_members_log = logging.getLogger("spirtd.membership")

# Stores a peer can train on at a [store] url: both speak RedisAI's tensor
# protocol, which the workers use.
EXTERNAL_BACKENDS = ("native", "redisai")


def redacted(url: str) -> str:
    """A store URL for logs and errors: without its password."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"password=[^&]*", "password=***", url))


# Every service of the daemon's own, by full name: health answers for each,
# reflection describes them.
SERVICES = tuple(module.DESCRIPTOR.services_by_name[name].full_name for module, name in (
    (control_pb2, "Control"), (membership_pb2, "Membership"), (heartbeat_pb2, "Heartbeat"),
    (gradients_pb2, "GradientExchange"), (gradients_pb2, "JobReplication"),
))  # fmt: skip

# The revocation list rides on as many gossip rounds as an update would in a
# cluster this big; push-pull exchanges carry it too, whatever the size.
CRL_GOSSIP_CLUSTER_SIZE = 32

_EVENT_WORDS = {
    EventKind.JOIN: "joined",
    EventKind.UPDATE: "changed its address or metadata",
    EventKind.SUSPECT: "is suspected: it did not answer direct or indirect probes",
    EventKind.ALIVE: "refuted the suspicion: it is alive",
    EventKind.DEAD: "is dead: nobody heard from it within the suspicion timeout",
    EventKind.LEAVE: "left the cluster",
}


def stream_chunk_bytes(max_message_bytes: int) -> int:
    """The data of one streamed message, leaving room for its other fields."""
    return max(4, (max_message_bytes - 1024) // 4 * 4)


def refusal_log(config: DaemonConfig, counters: Counters, clock: Clock) -> RefusalLog:
    """The daemon's one log of refusals (of handshakes and of calls)."""
    return RefusalLog(counters, clock, interval_s=config.refusal_log_interval_s, burst=config.refusal_log_burst)


class DaemonNodeView:
    """Control's NodeView of a daemon: every read goes to the daemon's state
    at that moment (Control serves from the server's start, before the
    membership runs)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    @property
    def id(self) -> str:
        return self._daemon.config.id

    @property
    def address(self) -> str:
        return self._daemon.address

    @property
    def store_backend(self) -> str:
        return self._daemon.store_backend

    @property
    def local(self) -> Member:
        return self._state().local

    def members(self) -> list[Member]:
        state = self._daemon.membership
        return state.members() if state is not None else []

    def rtt_s(self, member_id: str) -> float | None:
        state = self._daemon.membership
        return state.rtt(member_id) if state is not None else None

    def subscribe(self) -> Subscription:
        driver = self._daemon.membership_driver
        if driver is None:
            raise MembershipError("this peer's membership has not started")
        return driver.subscribe()

    def membership_counters(self) -> dict[str, int]:
        driver = self._daemon.membership_driver
        if driver is None:
            return {}
        stats = driver.stats()
        out = {f"membership.{way}.{kind}": n
               for way, counts in (("sent", stats.sent), ("received", stats.received), ("failed", stats.failed))
               for kind, n in counts.items()}  # fmt: skip
        out.update({"membership.refutations": stats.refutations, "membership.awareness": stats.awareness,
                    "membership.events_dropped": stats.events_dropped})  # fmt: skip
        return out

    def _state(self) -> MembershipState:
        state = self._daemon.membership
        if state is None:
            raise MembershipError("this peer's membership has not started")
        return state


class Daemon:
    def __init__(self, config: DaemonConfig, *, clock: Clock | None = None, counters: Counters | None = None,
                 refusals: RefusalLog | None = None) -> None:  # fmt: skip
        self.config = config
        self.clock = clock or SystemClock()
        self.counters = counters or Counters()
        self.refusals = refusals or refusal_log(config, self.counters, self.clock)
        self.address = ""
        self.store_backend = "unknown"
        self._stack = contextlib.AsyncExitStack()
        self._tasks = TaskSet()
        self._driver: MembershipDriver | None = None
        self._state: MembershipState | None = None
        self._channels: ChannelPool | None = None
        self._saved = node_state.NodeState()
        self._closing = False
        self._own_serial: int | None = None
        self.jobs: JobManager | None = None
        self.exchange: ExchangeDriver | None = None
        self.health = Health(SERVICES)
        self.metrics_address = ""  # HOST:PORT of the metrics endpoint, if one serves
        # Set when the peer must stop on its own (its certificate was revoked);
        # exit_reason says why.
        self.must_stop = asyncio.Event()
        self.exit_reason = ""

    @property
    def membership(self) -> MembershipState | None:
        """The membership state; None until the membership starts (after the server)."""
        return self._state

    @property
    def membership_driver(self) -> MembershipDriver | None:
        return self._driver

    # ---- lifecycle ----

    async def __aenter__(self) -> "Daemon":
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _start(self) -> None:
        cfg = self.config
        node_state.make_data_dir(Path(cfg.data_dir))
        self._saved, damaged = node_state.load_or_recover(Path(cfg.data_dir), self.clock.wall())
        if damaged:
            _log.error("%s; starting with incarnation %d", damaged, self._saved.incarnation)
        own, ca_pem, self.guard = self._security()
        self.guard.on_revoked_caller = self._expel_revoked
        location, memory_limit = await self._open_store()
        self._channels = ChannelPool(
            channel_credentials(own, ca_pem) if own else None, peer_channel_options(cfg.max_message_bytes)
        )
        self._stack.push_async_callback(self._channels.aclose)
        members = AliveMembers(cfg.id, lambda: self._state)
        exchange_transport = GrpcExchangeTransport(cfg.id, self._channels, members.address)
        self.pools = training.warm_pools(location, self.clock)
        self.exchange = await self._stack.enter_async_context(
            ExchangeDriver(cfg.id, exchange_transport, self.tensors, self.clock, members, counters=self.counters.inc,
                           max_chunk_bytes=stream_chunk_bytes(cfg.max_message_bytes))
        )
        self.replicas = GrpcJobReplicas(cfg.id, self._channels, members)
        self.jobs = await self._stack.enter_async_context(JobManager(
            Path(cfg.data_dir), self.tensors, training.training(self.pools), self.clock,
            cfg.jobs, store_memory_bytes=memory_limit, serve_chunk_bytes=stream_chunk_bytes(cfg.max_message_bytes),
            peers=ClusterPeers(self.exchange, exchange_transport, self.tensors), replicas=self.replicas,
        ))  # fmt: skip
        rounds = retransmit_limit(cfg.membership.retransmit_mult, CRL_GOSSIP_CLUSTER_SIZE)
        self.revocations = RevocationSpreader(self.guard, rounds, self._on_revocations)
        self._ages = StateAges(self.clock)
        self._restarts = RestartDetector()
        await self.health.starting()
        server = RpcServer(
            cfg.listen,
            credentials=server_credentials(own, ca_pem) if own else None,
            guard=self.guard,
            register=self._register,
            max_message_bytes=cfg.max_message_bytes,
            grace_s=cfg.shutdown_grace_s,
            limits=ConnectionLimits(cfg.max_connections, cfg.handshake_timeout_s, cfg.idle_timeout_s),
        )
        await self._stack.enter_async_context(server)
        host, _ = parse_address(cfg.listen, what="--listen", allow_port_zero=True)
        self.address = cfg.advertise or format_address(host, server.port)
        self._state = MembershipState(
            cfg.id, self.address, cfg.membership, rng=random.Random(), now=self.clock.monotonic(),
            meta={"version": __version__, "store": self.store_backend, BOOT_META: secrets.token_hex(6)},
            incarnation=self._saved.incarnation + 1,
        )  # fmt: skip
        self._persist()
        transport = GrpcTransport(self._channels, self._resolve_id, self.revocations)
        self._driver = await self._stack.enter_async_context(
            MembershipDriver(self._state, transport, self.clock, cfg.membership)
        )
        self._tasks.open(await self._stack.enter_async_context(asyncio.TaskGroup()))
        self._tasks.spawn(self._watch_events(), name="membership-events")
        self._tasks.spawn(self._flush_refusals(), name="refusal-log")
        if not cfg.insecure:
            self._tasks.spawn(self._watch_crl_file(), name="crl-file")
        if cfg.metrics.enabled:
            await self._serve_metrics()
        seeds = [s for s in cfg.seeds if s != self.address]
        if seeds:
            self._tasks.spawn(self._join(seeds), name="join")
        await self.health.ready()
        _log.info(
            "peer %s serving on %s (advertised as %s) with %s; store %s; %s%s",
            cfg.id, cfg.listen, self.address, "no TLS (--insecure)" if cfg.insecure else "mutual TLS",
            self.store_backend, f"joining through {', '.join(seeds)}" if seeds else "starting a cluster",
            f"; metrics at http://{self.metrics_address}/metrics" if self.metrics_address else "",
            extra={"id": cfg.id, "address": self.address, "store": self.store_backend,
                   **({"metrics": self.metrics_address} if self.metrics_address else {})},
        )  # fmt: skip

    async def _serve_metrics(self) -> None:
        """The Prometheus endpoint ([metrics]), fed by the components."""
        node = DaemonNodeView(self)
        metrics = DaemonMetrics(MetricSources(
            info=lambda: {"id": node.id, "version": __version__, "store": node.store_backend},
            members=node.members, counters=self.counters.snapshot, workers=self.pools.totals,
        ))  # fmt: skip
        self.tensors.time_commands(self.clock, metrics.observe_store_command)
        cfg = self.config.metrics
        endpoint = await self._stack.enter_async_context(
            MetricsEndpoint(cfg.host, cfg.port, metrics.registry, self.clock)  # type: ignore[arg-type]
        )
        self.metrics_address = endpoint.address
        if self.jobs is not None:
            self._tasks.spawn(RoundFollower(self.jobs, metrics.observe_round, self.clock).run(), name="round-metrics")

    async def _open_store(self) -> tuple[dict[str, str], int | None]:
        """The colocated store (started and supervised here), or the external
        one [store] url names; returns where workers find it and its memory
        limit (None: none known)."""
        cfg = self.config.store
        if cfg.url is None:
            self.store = await self._stack.enter_async_context(EmbeddedStore(cfg, clock=self.clock))
            self.tensors = await connect(socket_path=self.store.socket_path, password=self.store.password)
            self._stack.push_async_callback(self.tensors.aclose)
            self.store_backend = self.tensors.backend
            return store_env(self.store.socket_path, cfg.password_file), cfg.memory_limit_bytes
        self.store = None
        password = read_password_file(cfg.url_password_file) if cfg.url_password_file is not None else None
        self.tensors = await connect(cfg.url, password=password)
        self._stack.push_async_callback(self.tensors.aclose)
        self.store_backend = self.tensors.backend
        if self.store_backend not in EXTERNAL_BACKENDS:
            raise ConfigError(f"[store] url {redacted(cfg.url)} is a Redis with neither spirt's module nor RedisAI: "
                              "workers need a store that speaks RedisAI's tensor protocol")  # fmt: skip
        _log.info("using the external store at %s (%s)", redacted(cfg.url), self.store_backend)
        return store_env(url=cfg.url, password_file=cfg.url_password_file), await self.tensors.memory_limit_bytes()

    def _security(self) -> tuple[object, bytes | None, Guard]:
        cfg = self.config
        if cfg.insecure:
            _log.warning("running with --insecure: no TLS and no authentication; use it for local experiments only")
            return None, None, Guard(None, None, self.counters, max_message_bytes=cfg.max_message_bytes, insecure=True,
                                     refusals=self.refusals)  # fmt: skip
        certs = CertsDir(cfg.certs_dir)  # type: ignore[arg-type]
        own = certs.credentials(cfg.id, role=Role.PEER)
        self._own_serial = own.identity.serial
        crl = certs.revocations()
        if self._saved.crl_der:
            try:
                saved = RevocationList.from_der(self._saved.crl_der).verify(certs.ca_cert)
                crl = saved if saved.newer_than(crl) else crl
            except SecurityError as exc:
                _log.warning("ignoring the saved revocation list: %s", exc)
        if crl is not None and crl.is_revoked(own.identity.serial):
            raise SecurityError(f"this peer's certificate {cfg.id}.crt is revoked by the cluster CA "
                                f"(revocation list {crl.number}): it cannot join the cluster")  # fmt: skip
        guard = Guard(certs.ca_cert, crl, self.counters, max_message_bytes=cfg.max_message_bytes,
                      refusals=self.refusals)  # fmt: skip
        return own, certs.ca_pem, guard

    def _register(self, server: grpc.aio.Server) -> None:
        driver = lambda: self._driver  # noqa: E731 - the driver exists once serving starts
        heartbeat_pb2_grpc.add_HeartbeatServicer_to_server(HeartbeatService(driver, self.guard), server)
        membership_pb2_grpc.add_MembershipServicer_to_server(
            MembershipService(driver, self.guard, self.revocations), server
        )
        gradients_pb2_grpc.add_GradientExchangeServicer_to_server(
            GradientExchangeService(lambda: self.exchange, lambda: self.jobs, self.guard), server
        )
        gradients_pb2_grpc.add_JobReplicationServicer_to_server(JobReplicationService(lambda: self.jobs, self.guard),
                                                                server)  # fmt: skip
        control = ControlService(DaemonNodeView(self), self.counters, self._ages, self.clock,
                                 jobs=self.jobs, layout=training.layout,
                                 model_inputs=training.model_inputs,
                                 max_message_bytes=self.config.max_message_bytes)  # fmt: skip
        control_pb2_grpc.add_ControlServicer_to_server(control, server)
        self.health.register(server)
        add_reflection(server, (*SERVICES, HEALTH_SERVICE))

    async def aclose(self) -> None:
        """Leaves the cluster (bounded by leave_timeout_s), then stops serving
        and closes the store. Idempotent."""
        if self._closing:
            return
        self._closing = True
        await self.health.shutting_down()  # probes see it before the peer leaves
        await self._tasks.aclose()
        if self._driver is not None:
            try:
                async with asyncio.timeout(self.config.leave_timeout_s):
                    await self._driver.leave()
                _log.info("announced leaving the cluster")
            except (TimeoutError, MembershipError) as exc:
                _log.warning("could not announce leaving in time (%s); others will notice it as a failure", exc)
        await self._stack.aclose()
        _log.info("peer %s stopped", self.config.id)

    # ---- membership glue ----

    def _resolve_id(self, address: str) -> str | None:
        if self._state is None:
            return None
        for member in self._state.members():
            if member.address == address:
                return member.id
        return None

    async def _join(self, seeds: list[str]) -> None:
        while True:
            try:
                count = await self._driver.join(seeds)  # type: ignore[union-attr]
                _log.info("joined the cluster through %s: %d members known", ", ".join(seeds), count)
                return
            except MembershipError as exc:
                _log.warning("could not join yet (%s); trying again in %.1f s", exc, self.config.join_retry_s)
            await self.clock.sleep(self.config.join_retry_s)

    async def _flush_refusals(self) -> None:
        while True:
            await self.clock.sleep(self.config.refusal_log_interval_s)
            self.refusals.flush()

    async def _watch_crl_file(self) -> None:
        """Adopts a newer crl.pem copied into the certs dir; gossip takes it on."""
        path = Path(self.config.certs_dir) / CRL_FILE  # type: ignore[arg-type]
        seen = None
        while True:
            await self.clock.sleep(self.config.crl_poll_s)
            try:
                stat = path.stat()
                mark = (stat.st_mtime_ns, stat.st_size)
                if mark == seen:
                    continue
                seen = mark
                crl = RevocationList.from_pem(path.read_bytes())
            except (OSError, SecurityError) as exc:
                _log.warning("cannot read %s: %s", path, exc)
                continue
            self.revocations.receive(crl.der)

    async def _watch_events(self) -> None:
        subscription = self._driver.subscribe()  # type: ignore[union-attr]
        try:
            async for event in subscription:
                self._on_event(event)
        finally:
            await subscription.aclose()

    def _on_event(self, event: MemberEvent) -> None:
        self._ages.observe(event)
        member = event.member
        restarted = self._restarts.restarted(event)
        if restarted:
            _members_log.warning("member %s at %s restarted: its old process is gone", member.id, member.address,
                                 extra={"member": member.id, "event": "restart"})  # fmt: skip
        # A restart loses the old process's round work as a death does.
        if (event.kind in (EventKind.DEAD, EventKind.LEAVE) or restarted) and self.exchange is not None:
            self.exchange.member_dead(member.id)
        if event.kind in (EventKind.JOIN, EventKind.ALIVE) and self.jobs is not None and self.jobs.unfinished():
            self._tasks.spawn(self.replicas.offer_to(member.id, self.jobs.unfinished()), name=f"jobs to {member.id}")
        level = logging.WARNING if event.kind in (EventKind.SUSPECT, EventKind.DEAD) else logging.INFO
        _members_log.log(level, "member %s at %s %s", member.id, member.address, _EVENT_WORDS[event.kind],
                         extra={"member": member.id, "event": event.kind.value, "incarnation": member.incarnation})  # fmt: skip
        if self._state is not None and self._state.local.incarnation != self._saved.incarnation:
            self._persist()

    def _persist(self) -> None:
        crl = self.guard.revocations
        self._saved = node_state.NodeState(self._state.local.incarnation if self._state else 0,
                                           crl.der if crl is not None else None)  # fmt: skip
        node_state.save(Path(self.config.data_dir), self._saved)

    def _on_revocations(self, crl: RevocationList) -> None:
        self._persist()
        if self._own_serial is not None and crl.is_revoked(self._own_serial):
            self.exit_reason = (f"this peer's certificate is revoked by the cluster CA (revocation list "
                                f"{crl.number}): stopping")  # fmt: skip
            _log.error("%s", self.exit_reason, extra={"crl_number": crl.number})
            self.must_stop.set()
            return
        for name, serial in list(self.guard.serials.items()):
            if crl.is_revoked(serial):
                self._expel(name)

    def _expel_revoked(self, identity: Identity) -> None:
        self._expel(identity.name)

    def _expel(self, name: str) -> None:
        if self._driver is None or self._state is None:
            return
        member = self._state.member(name)
        if member is None or name == self.config.id:
            return
        self._driver.expel(name)
        _members_log.warning("expelled member %s: its certificate is revoked", name, extra={"member": name})
        if self._channels is not None:
            self._tasks.spawn(self._channels.drop(member.address), name=f"drop-channel {name}")
