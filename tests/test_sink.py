"""The shard sink: direct (O_DIRECT) and buffered writes give the same file and sha256; refusals fall back;
disk errors name the shard and leave nothing behind."""

import errno
import fcntl
import hashlib
import os
import tempfile

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import procgen
from procgen import _shards, _sink
from procgen._sink import ShardSink

BLOCK = 8192  # small blocks, so that a few KB of writes cross several of them
DYCK = {"k": 4, "length": 64}


def direct_supported(directory) -> bool:
    """Whether ``directory``'s file system opens files with O_DIRECT (tmpfs does not)."""
    if not hasattr(os, "O_DIRECT"):
        return False
    path = os.path.join(directory, "probe")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644))
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.remove(path)


def write_through(path, pieces, direct, block_bytes=BLOCK):
    """Write ``pieces`` through a ShardSink into ``path``; return the sink (finished)."""
    with open(path, "wb") as file, ShardSink(file, path, direct, block_bytes) as sink:
        for piece in pieces:
            assert sink.write(piece) == len(piece)
        sink.finish()
    return sink


def o_direct(fd) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


@pytest.fixture
def sink_modes(monkeypatch):
    """``(direct requested, direct in use)`` of every ShardSink made while the test runs."""
    modes = []
    real_init = ShardSink.__init__

    def init(self, file, path, direct=False, block_bytes=None):
        real_init(self, file, path, direct, block_bytes)
        modes.append((direct, self.direct))

    monkeypatch.setattr(ShardSink, "__init__", init)
    return modes


pieces_strategy = st.lists(st.binary(min_size=0, max_size=3 * BLOCK + 5), max_size=8)


@settings(max_examples=40, deadline=None)
@given(pieces=pieces_strategy, as_arrow=st.booleans())
def test_direct_and_buffered_write_the_same_file_and_sha256(pieces, as_arrow):
    if as_arrow:
        pieces = [pa.py_buffer(p) for p in pieces]  # what pyarrow's IPC writer hands over
    expected = b"".join(bytes(p) for p in pieces)
    with tempfile.TemporaryDirectory() as directory:
        for direct in (False, True):
            path = os.path.join(directory, f"shard-{direct}")
            sink = write_through(path, pieces, direct)
            with open(path, "rb") as file:
                assert file.read() == expected
            assert sink.size == sink.tell() == len(expected)
            assert sink.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_full_blocks_go_out_with_o_direct_and_the_tail_through_the_page_cache(tmp_path, monkeypatch):
    if not direct_supported(tmp_path):
        pytest.skip("this file system does not support O_DIRECT")
    writes = []
    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        writes.append((o_direct(fd), len(data), offset))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(_sink.os, "pwrite", pwrite)
    data = os.urandom(3 * BLOCK + 100)
    sink = write_through(tmp_path / "shard", [data[:5000], data[5000:]], direct=True)
    assert sink.direct
    assert writes == [(True, BLOCK, 0), (True, BLOCK, BLOCK), (True, BLOCK, 2 * BLOCK), (False, 100, 3 * BLOCK)]
    assert (tmp_path / "shard").read_bytes() == data


def test_a_file_system_that_refuses_o_direct_at_open_gets_buffered_writes(tmp_path, monkeypatch):
    real_open = os.open

    def open_without_o_direct(path, flags, *args):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(_sink.os, "open", open_without_o_direct)
    data = os.urandom(2 * BLOCK + 1)
    sink = write_through(tmp_path / "shard", [data], direct=True)
    assert not sink.direct
    assert (tmp_path / "shard").read_bytes() == data and sink.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_file_system_that_refuses_o_direct_writes_gets_buffered_writes(tmp_path, monkeypatch):
    if not direct_supported(tmp_path):
        pytest.skip("this file system does not support O_DIRECT")
    real_pwrite = os.pwrite

    def pwrite_refusing_o_direct(fd, data, offset):
        if o_direct(fd):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(_sink.os, "pwrite", pwrite_refusing_o_direct)
    data = os.urandom(3 * BLOCK + 7)
    sink = write_through(tmp_path / "shard", [data], direct=True)
    assert not sink.direct
    assert (tmp_path / "shard").read_bytes() == data and sink.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("failing_write", [0, 1, 3])  # first block, a later block, the tail
def test_a_full_disk_during_a_direct_write_is_one_error_naming_the_shard(tmp_path, monkeypatch, failing_write):
    if not direct_supported(tmp_path):
        pytest.skip("this file system does not support O_DIRECT")
    calls = []
    real_pwrite = os.pwrite

    def pwrite_until_full(fd, data, offset):
        calls.append(offset)
        if len(calls) > failing_write:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(_sink.os, "pwrite", pwrite_until_full)
    with pytest.raises(OSError) as err:
        write_through(str(tmp_path / "shard"), [os.urandom(BLOCK)] * 3 + [b"tail"], direct=True)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(tmp_path / "shard")
    assert "\n" not in str(err.value)


def test_the_buffered_hash_queue_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(_sink, "_HASH_QUEUE_BYTES", 3 * BLOCK)
    with open(tmp_path / "shard", "wb") as file, ShardSink(file, str(tmp_path / "shard")) as sink:
        for _ in range(20):
            sink.write(os.urandom(BLOCK))
            assert sink._hashing_bytes <= 3 * BLOCK
        sink.finish()
        assert sink._hashing_bytes == 0


@pytest.mark.parametrize("block_bytes", [0, -4096, 1000, 4097])
def test_block_bytes_must_be_a_positive_multiple_of_4096(tmp_path, block_bytes):
    with open(tmp_path / "shard", "wb") as file, \
            pytest.raises(ValueError, match=f"block_bytes must be a positive multiple of 4096; got {block_bytes}"):
        ShardSink(file, "shard", block_bytes=block_bytes)


def test_procgen_direct_io_0_turns_direct_writes_off(monkeypatch):
    monkeypatch.setenv(_sink.DIRECT_IO_ENV, "0")
    assert not _sink.direct_io_enabled()
    monkeypatch.setenv(_sink.DIRECT_IO_ENV, "1")
    assert _sink.direct_io_enabled() == hasattr(os, "O_DIRECT")


def test_direct_and_buffered_datasets_are_byte_identical(tmp_path, monkeypatch, sink_modes):
    """Through procgen.write: same manifests (sizes, sha256), and the direct one validates."""
    monkeypatch.setattr(_sink, "BLOCK_BYTES", BLOCK)
    monkeypatch.setenv(_sink.DIRECT_IO_ENV, "0")
    buffered = procgen.write("dyck", tmp_path / "buffered", n=3000, shards=3, progress=False, **DYCK)
    sink_modes.clear()
    monkeypatch.setenv(_sink.DIRECT_IO_ENV, "1")
    monkeypatch.setattr(_shards, "DIRECT_MIN_BYTES", 0)
    direct = procgen.write("dyck", tmp_path / "direct", n=3000, shards=3, progress=False, **DYCK)
    assert sink_modes == [(True, direct_supported(tmp_path))] * 3
    assert direct["shards"] == buffered["shards"]
    assert procgen.validate(tmp_path / "direct")["ok"]


def test_small_shards_are_written_through_the_page_cache(tmp_path, sink_modes):
    procgen.write("dyck", tmp_path / "small", n=1000, shards=2, progress=False, **DYCK)
    assert sink_modes == [(False, False)] * 2  # 32 000 tokens per shard << DIRECT_MIN_BYTES


def test_a_full_disk_in_a_direct_write_leaves_no_half_shard_and_the_rerun_resumes(tmp_path, monkeypatch):
    if not direct_supported(tmp_path):
        pytest.skip("this file system does not support O_DIRECT")
    monkeypatch.setattr(_sink, "BLOCK_BYTES", BLOCK)
    monkeypatch.setattr(_shards, "DIRECT_MIN_BYTES", 0)
    out = tmp_path / "full"
    real_pwrite = os.pwrite

    def pwrite_full_in_the_second_shard(fd, data, offset):
        if "data-00001-of-00002" in os.readlink(f"/proc/self/fd/{fd}") and o_direct(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(_sink.os, "pwrite", pwrite_full_in_the_second_shard)
    with pytest.raises(OSError, match="No space left on device.*rerun the same call to resume") as err:
        procgen.write("dyck", out, n=2000, shards=2, progress=False, **DYCK)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(out / "data-00001-of-00002.arrow")
    files = os.listdir(out)
    assert "procgen.json" not in files and "data-00001-of-00002.arrow" not in files
    assert "data-00000-of-00002.arrow" in files
    assert not [p for p in files if ".tmp-" in p]
    monkeypatch.undo()
    assert procgen.write("dyck", out, n=2000, shards=2, progress=False, **DYCK)["num_rows"] == 2000
    assert procgen.validate(out)["ok"]
