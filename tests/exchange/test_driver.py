"""The exchange driver on the in-memory network, each peer with its own real
store (a redis-server with spirt's module): reduce-scatter and all-gather
give every participant the same, correctly weighted global aggregate;
deaths, refusals and lateness are handled as docs/rounds.md says."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pytest

from spirtd.clock import SystemClock
from spirtd.errors import AttemptFailed
from spirtd.exchange.attempt import LocalAggregate
from spirtd.exchange.config import AgreementConfig, ExchangeConfig, RoundSettings
from spirtd.exchange.driver import ExchangeDriver
from spirtd.exchange.formulas import exchange_bytes
from spirtd.exchange.memory import MemoryExchange
from spirtd.exchange.streams import ContributionHeader, Stage
from spirtd.store import connect

M = 1003  # not a multiple of the peers: shards differ in size
SETTINGS = RoundSettings("mean", {}, ExchangeConfig(
    agreement=AgreementConfig(propose_timeout_s=1.0, report_timeout_s=2.0), chunk_bytes=256,
    deadline_floor_s=0.5, deadline_ceiling_s=2.0, gather_timeout_s=2.0))
TIMEOUT_S = 20


class Alive:
    def __init__(self, peers):
        self.peers = set(peers)

    def alive(self):
        return set(self.peers)


class Cluster:
    def __init__(self, stores, names, net: MemoryExchange):
        self.names = names
        self.stores = dict(zip(names, stores))
        self.net = net
        self.view = Alive(names)
        self.drivers = {n: ExchangeDriver(n, net.transport(n), self.stores[n], SystemClock(), self.view)
                        for n in names}
        for n in names:
            net.register(n, self.drivers[n])

    async def __aenter__(self):
        for d in self.drivers.values():
            await d.__aenter__()
        return self

    async def __aexit__(self, *exc):
        for d in self.drivers.values():
            await d.__aexit__(*exc)

    def kill(self, peer):
        self.net.kill(peer)
        self.view.peers.discard(peer)
        for n, d in self.drivers.items():
            if n != peer:
                d.member_dead(peer)


@pytest.fixture
def stores(start_redis):
    """open_all(n): n stores, each on its own redis-server with the module."""
    made = []

    async def open_all(n: int = 4):
        for i in range(n):
            server = start_redis(f"s{i}")
            made.append(await connect(socket_path=server.socket_path, password=server.password))
        return made

    yield open_all


def local_vector(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(M).astype(np.float32)


async def one_round(cluster: Cluster, peers, samples, *, before_exchange=None, settings=SETTINGS, background=()):
    """peers each run the round to its commit; background peers run it too,
    and are stopped once the others are done."""
    async def peer(name):
        d = cluster.drivers[name]
        store = cluster.stores[name]
        i = cluster.names.index(name)
        await store.set(f"local:{name}", local_vector(i))
        while True:
            key = await d.agree("j1", 0, "s0", (), M, "job:j1:round:0:", settings)
            if before_exchange is not None:
                await before_exchange(name, key)
            try:
                glob = await d.exchange("j1", key, LocalAggregate(f"local:{name}", samples[name], 1.0 + i))
                out = np.array(await store.get(glob.key))
                state = hashlib.sha256(out.tobytes()).hexdigest()
                digests = await d.commit("j1", key, state)
                return key, glob, out, digests
            except AttemptFailed:
                continue

    others = [asyncio.create_task(peer(p)) for p in background]
    try:
        async with asyncio.timeout(TIMEOUT_S):
            return dict(zip(peers, await asyncio.gather(*(peer(p) for p in peers))))
    finally:
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


async def test_three_peers_reduce_scatter_and_all_gather_the_weighted_mean(stores):
    made = await stores()
    net = MemoryExchange(SystemClock())
    names = ["a", "b", "c"]
    samples = {"a": 10.0, "b": 20.0, "c": 30.0}
    async with Cluster(made[:3], names, net) as cluster:
        results = await one_round(cluster, names, samples)
    expected = sum(local_vector(i).astype(np.float64) * samples[n] for i, n in enumerate(names)) / 60.0
    outs = [results[n][2] for n in names]
    for out in outs:
        assert out.tobytes() == outs[0].tobytes()  # bit-identical everywhere
    np.testing.assert_allclose(outs[0], expected, rtol=1e-5, atol=1e-6)
    glob = results["a"][1]
    assert glob.samples == 60.0 and glob.contributors == (("a", "b", "c"),) * 3
    assert glob.loss == pytest.approx((1 * 10 + 2 * 20 + 3 * 30) / 60)
    for n in names:  # payload bytes each way: 2 (n-1)/n M 4, give or take a shard's rounding
        assert abs(net.sent_bytes[n] - exchange_bytes(3, M)) <= 4 * 4
        assert abs(net.received_bytes[n] - exchange_bytes(3, M)) <= 4 * 4
    state = hashlib.sha256(outs[0].tobytes()).hexdigest()
    for n in names:  # each peer heard a majority's digests (its own among them), all of the one model
        heard = results[n][3]
        assert len(heard) >= 2 and n in heard and set(heard) <= set(names) and set(heard.values()) == {state}


async def test_a_peer_dead_before_the_exchange_is_left_out_by_the_next_attempt(stores):
    made = await stores()
    net = MemoryExchange(SystemClock())
    names = ["a", "b", "c"]
    samples = {"a": 1.0, "b": 1.0, "c": 1.0}

    async def kill_c(name, key):
        if "c" in key.participants and name == "a":
            cluster.kill("c")

    async with Cluster(made[:3], names, net) as cluster:
        results = await one_round(cluster, ["a", "b"], samples, before_exchange=kill_c)
    key_a, glob_a, out_a, _ = results["a"]
    assert key_a.participants == ("a", "b") and key_a.attempt >= 1
    assert out_a.tobytes() == results["b"][2].tobytes()
    np.testing.assert_allclose(out_a, (local_vector(0) + local_vector(1)) / 2, rtol=1e-6)


async def test_a_bad_stream_is_refused_leaves_nothing_and_the_round_goes_on(stores):
    made = await stores()
    net = MemoryExchange(SystemClock())
    names = ["a", "b"]
    samples = {"a": 1.0, "b": 1.0}
    refused = []

    async def forge(name, key):
        if name != "a":
            return
        d = cluster.drivers["b"]
        data = b"\0" * 40
        header = ContributionHeader(job="j1", key=key, sender="a", shard=1, start=502, n_elements=10, dtype="FLOAT",
                                    nbytes=40, sha256=hashlib.sha256(b"x").hexdigest(), stage=Stage.SCATTER)

        async def chunks():
            yield 0, data

        refused.append(await d.on_push("a", header, chunks()))  # wrong bounds
        header = ContributionHeader(job="j1", key=key, sender="a", shard=1, start=502, n_elements=501,
                                    dtype="FLOAT", nbytes=2004, sha256="0" * 64, stage=Stage.SCATTER)

        async def corrupt():
            yield 0, b"\1" * 2004

        refused.append(await d.on_push("a", header, corrupt()))  # checksum
        keys = await cluster.stores["b"].keys_matching("job:j1:round:0:a*:part:a*")
        refused.append(keys)

    async with Cluster(made[:2], names, net) as cluster:
        results = await one_round(cluster, names, samples, before_exchange=forge)
    assert refused[0].kind.value == "wrong_shard"
    assert refused[1].kind.value == "bad_checksum"
    assert refused[2] == []  # nothing of the refused streams stayed
    np.testing.assert_allclose(results["a"][2], (local_vector(0) + local_vector(1)) / 2, rtol=1e-6)


async def test_half_precision_on_the_wire_halves_the_bytes_and_every_peer_holds_the_same_bits(stores):
    from dataclasses import replace

    made = await stores()
    net = MemoryExchange(SystemClock())
    names = ["a", "b", "c"]
    samples = {"a": 1.0, "b": 1.0, "c": 1.0}
    half = replace(SETTINGS, config=replace(SETTINGS.config, wire_dtype="HALF"))
    async with Cluster(made[:3], names, net) as cluster:
        results = await one_round(cluster, names, samples, settings=half)
    outs = [results[n][2] for n in names]
    assert all(out.tobytes() == outs[0].tobytes() for out in outs)  # the owner holds what it sent
    expected = sum(local_vector(i) for i in range(3)) / 3
    np.testing.assert_allclose(outs[0], expected, rtol=2e-3, atol=2e-3)
    for n in names:
        assert abs(net.sent_bytes[n] - exchange_bytes(3, M, itemsize=2)) <= 4 * 2


async def test_krum_across_shards_selects_as_on_whole_vectors_and_every_peer_holds_the_same(stores):
    """Five peers, one of them far off: each owner sends its shard's partial
    distances, every owner sums the same five matrices, so all choose the
    same contributions, as Krum on the whole vectors would."""
    from dataclasses import replace

    from spirtd.aggregation import aggregate

    made = await stores(5)
    net = MemoryExchange(SystemClock())
    names = ["a", "b", "c", "d", "e"]
    samples = {n: 1.0 for n in names}
    krum = replace(SETTINGS, rule="multikrum", options={"f": 1, "m": 2})

    vectors = {n: local_vector(i) for i, n in enumerate(names)}
    vectors["e"] = vectors["e"] + 100.0  # the outlier

    async def set_outlier(name, key):
        await cluster.stores[name].set(f"local:{name}", vectors[name])

    async with Cluster(made, names, net) as cluster:
        results = await one_round(cluster, names, samples, settings=krum, before_exchange=set_outlier)
    outs = [results[n][2] for n in names]
    assert all(out.tobytes() == outs[0].tobytes() for out in outs)
    whole = aggregate("multikrum", [vectors[n] for n in names], f=1, m=2)
    assert 4 not in whole.selected
    np.testing.assert_allclose(outs[0], whole.value, rtol=1e-6, atol=1e-6)


async def test_an_owner_cut_off_mid_exchange_fails_the_attempt_at_once_though_pushes_to_it_hang(stores):
    made = await stores(3)
    net = MemoryExchange(SystemClock())
    names = ["a", "b", "c"]
    samples = {n: 1.0 for n in names}
    cut = []

    async def cut_c(name, key):
        if name == "a" and "c" in key.participants and not cut:
            cut.append(key)
            net.partition(["a", "b"], ["c"])  # pushes to c now hang, as into a black hole

            def declared_dead():
                cluster.view.peers.discard("c")
                for p in "ab":
                    cluster.drivers[p].member_dead("c")

            asyncio.get_running_loop().call_later(0.3, declared_dead)

    async with Cluster(made, names, net) as cluster:
        results = await one_round(cluster, ["a", "b"], samples, before_exchange=cut_c, background=["c"])
    assert cut and cut[0].participants == ("a", "b", "c")
    assert results["a"][0].participants == ("a", "b")  # the next attempt, without c, within the test's timeout
    assert results["a"][2].tobytes() == results["b"][2].tobytes()


async def test_an_attempt_whose_aggregate_the_store_could_not_hold_fails_instead_of_waiting_forever(stores):
    """The driver's prepare failing (the store refused the global aggregate's
    tensor) fails the attempt; run() and a push must not wait for a tensor
    that will never be made: the agreement's WORKING phase has no deadline
    of its own, so a wait there would stall the round for good."""
    from spirtd.exchange.attempt import AttemptExchange
    from spirtd.exchange.messages import AttemptKey

    (store,) = await stores(1)
    key = AttemptKey(0, 0, ("a", "b"))
    attempt = AttemptExchange("a", "j", key, M, store, "j:scratch:", "mean", {}, 0.5, SystemClock(),
                              SETTINGS.config)  # fmt: skip
    attempt.fail("the store could not hold the attempt's aggregate: refused")  # as ExchangeDriver._prepare does
    local = LocalAggregate("j:local", 1.0, 0.5)
    with pytest.raises(AttemptFailed, match="could not hold"):
        await asyncio.wait_for(attempt.run(local, MemoryExchange(SystemClock()).transport("a"), 1.0), TIMEOUT_S)


async def test_an_owner_that_runs_no_such_attempt_fails_it_at_once_instead_of_waiting_for_its_result(stores):
    """A joiner agreed an attempt from proposals the others had left behind
    (it took their state while they went on without it): every owner
    refuses its parts, as it runs no such attempt. Their results will never
    come, so the attempt fails at once; it waited for the whole
    gather_timeout_s before (60 s by default), stalling the joiner."""
    from spirtd.exchange.attempt import AttemptExchange
    from spirtd.exchange.messages import AttemptKey

    store_a, store_b = await stores(2)
    net = MemoryExchange(SystemClock())
    b = ExchangeDriver("b", net.transport("b"), store_b, SystemClock(), Alive(["a", "b"]))
    net.register("b", b)
    config = ExchangeConfig(agreement=AgreementConfig(propose_timeout_s=0.5), chunk_bytes=256, deadline_floor_s=0.5,
                            deadline_ceiling_s=60.0, gather_timeout_s=60.0)  # fmt: skip
    attempt = AttemptExchange("a", "j", AttemptKey(0, 0, ("a", "b")), M, store_a, "j:scratch:", "mean", {}, 0.5,
                              SystemClock(), config)  # fmt: skip
    await store_a.set("j:local", local_vector(0))
    await attempt.prepare()
    async with b:
        with pytest.raises(AttemptFailed, match="b, the owner of shard 1, refused.*runs no attempt 0 of round 0"):
            await asyncio.wait_for(attempt.run(LocalAggregate("j:local", 1.0, 0.5), net.transport("a"), 60.0),
                                   TIMEOUT_S)  # fmt: skip
