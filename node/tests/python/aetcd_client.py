"""aetcd, a Python etcd client from PyPI, against a node's etcd API: what an application using
it does. Prints one line per check; exits non-zero at the first that fails.

    python aetcd_client.py HOST PORT
"""

import asyncio
import sys

import aetcd


async def main(host: str, port: int) -> None:
    async with aetcd.Client(host=host, port=port) as client:
        await client.put(b"py/a", b"1")
        await client.put(b"py/b", b"2")
        got = await client.get(b"py/a")
        assert got.value == b"1", got
        print("get", got.value.decode(), "at", got.mod_revision)

        listed = [(kv.key, kv.value) for kv in await client.get_prefix(b"py/")]
        assert listed == [(b"py/a", b"1"), (b"py/b", b"2")], listed
        print("prefix", len(listed))

        swapped, _ = await client.transaction(
            compare=[client.transactions.value(b"py/a") == b"1"],
            success=[client.transactions.put(b"py/a", b"3")],
            failure=[],
        )
        assert swapped
        lost, _ = await client.transaction(
            compare=[client.transactions.value(b"py/a") == b"1"],
            success=[client.transactions.put(b"py/a", b"4")],
            failure=[],
        )
        assert not lost
        print("txn", swapped, lost)

        deleted = await client.delete(b"py/b")
        assert deleted.deleted == 1, deleted
        print("delete", deleted.deleted)

        status = await client.status()
        assert status.version == "3.5.0", status.version
        print("status", status.version)

        watch = await client.watch(b"py/a", start_revision=1)
        values = []
        async for event in watch:
            values.append(event.kv.value)
            if len(values) == 2:
                break
        await watch.cancel()
        assert values == [b"1", b"3"], values
        print("watch", [v.decode() for v in values])

        lease = await client.lease(30)
        assert lease.ttl == 30, lease.ttl
        await client.put(b"py/session", b"alive", lease=lease)
        assert await lease.granted_ttl() == 30
        assert 0 < await lease.remaining_ttl() <= 30
        assert await lease.keys() == [b"py/session"], await lease.keys()
        renewed = await lease.refresh()
        assert renewed.TTL == 30, renewed
        await lease.revoke()
        assert await client.get(b"py/session") is None
        print("lease", lease.id, "revoked with its key")

        # aetcd's lock: a key with a lease, taken by a transaction.
        first = client.lock(b"py-lock", ttl=10)
        assert await first.acquire(timeout=5)
        second = client.lock(b"py-lock", ttl=10)
        assert not await second.acquire(timeout=1)
        await first.release()
        assert await second.acquire(timeout=5)
        await second.release()
        print("lock", "handed over")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2])), timeout=60))
    except Exception as error:  # noqa: BLE001 - the test prints what failed
        print(f"failed: {error!r}", file=sys.stderr)
        sys.exit(1)
