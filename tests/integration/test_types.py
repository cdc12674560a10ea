#!/usr/bin/python3
"""HDF5 features written through the mount, one file per case.

Every case is one writer function, called twice with the same content: once
for a path on the local disk, once for the same path on the mount. Then:

  <case>:write    the writer runs without error on local disk and mount;
  <case>:readback right after writing, the mount reads back the local bytes;
  <case>:remount  after unmount + mount (fresh spool dir): byte-for-byte
                  equal to the local copy, same `h5dump -p` output, and the
                  store holds a manifest plus exactly one object per stored
                  chunk (a non-HDF5 file: exactly one plain object with the
                  same bytes).

The mount uses block_size=1M so the 5 MiB contiguous dataset must become
five block objects.

usage: test_types.py --mount-bin build/fs/mount.cloudh5
         [-k NAME]... [-x NAME]...

-k runs only the tests whose name contains NAME, -x skips them.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402
from h5py import h5d, h5f, h5g, h5p, h5s, h5t, h5z  # noqa: E402

BLOCK = "1M"
CASES = []


# h5dump arguments per case; the default dumps everything.
DUMP = {}


def case(name, kind="h5", dump=("-p",)):
    def deco(fn):
        CASES.append((name, fn, kind))
        DUMP[name] = list(dump)
        return fn
    return deco


def rng(seed):
    return np.random.default_rng(seed)


def new_latest(p):
    """h5py.File(p, "w", libver="latest") without object timestamps: v2
    object headers store times when tracking is on (the default for the
    root group and for groups), and the local and mount copies are written
    seconds apart."""
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_LATEST, h5f.LIBVER_LATEST)
    fcpl = h5p.create(h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    return h5py.File(h5f.create(p.encode(), h5f.ACC_TRUNC, fcpl=fcpl,
                                fapl=fapl))


def new_dcpl():
    """A dataset creation property list without timestamps (h5py's
    high-level API turns them off; the low-level default is on)."""
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    return dcpl


def group(parent, path, track_order=False):
    """parent.create_group(path) (intermediate groups included) without
    timestamps."""
    g = parent
    for name in path.split("/"):
        if name in g:
            g = g[name]
            continue
        gcpl = h5p.create(h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        if track_order:
            gcpl.set_link_creation_order(h5p.CRT_ORDER_TRACKED
                                         | h5p.CRT_ORDER_INDEXED)
            gcpl.set_attr_creation_order(h5p.CRT_ORDER_TRACKED
                                         | h5p.CRT_ORDER_INDEXED)
        g = h5py.Group(h5g.create(g.id, name.encode(), gcpl=gcpl))
    return g


# ---------------------------------------------------------------- datatypes

@case("ints")
def w_ints(p):
    with h5py.File(p, "w") as f:
        for dt in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                   ">i2", ">i4", ">u8"):
            info = np.iinfo(np.dtype(dt))
            span = int(info.max) - int(info.min)
            a = np.array([int(info.min) + span * k // 999
                          for k in range(1000)], dtype=dt)
            name = dt.replace(">", "be_")
            f.create_dataset("c_" + name, data=a)
            f.create_dataset("k_" + name, data=a, chunks=(128,))
            f["k_" + name].attrs["min"] = np.array(info.min, dt)


@case("floats")
def w_floats(p):
    with h5py.File(p, "w") as f:
        for dt in ("f2", "f4", "f8", ">f4", ">f8", "g"):
            a = np.linspace(-1e3, 1e3, 999).astype(dt)
            a[1], a[2], a[3] = np.nan, np.inf, -np.inf
            if a.dtype.itemsize == 16:
                # x87 long double: zero the 6 padding bytes numpy leaves
                # uninitialized, or the two copies differ there.
                a.view("u1").reshape(-1, 16)[:, 10:] = 0
            name = dt.replace(">", "be_")
            f.create_dataset("c_" + name, data=a)
            f.create_dataset("k_" + name, data=a.reshape(27, 37),
                             chunks=(10, 10))


@case("compound")
def w_compound(p):
    inner = np.dtype([("x", "i2"), ("y", "u1")])
    dt = np.dtype([("a", "i4"), ("b", "f8"), ("s", "S5"), ("n", inner),
                   ("arr", "f4", (3,))])
    a = np.zeros(300, dt)
    a["a"] = np.arange(300)
    a["b"] = np.arange(300) / 7
    a["s"] = [b"s%d" % i for i in range(300)]
    a["n"]["x"] = -np.arange(300)
    a["n"]["y"] = np.arange(300) % 256
    a["arr"] = np.arange(900).reshape(300, 3)
    with h5py.File(p, "w") as f:
        f.create_dataset("complex64", data=(np.arange(100) * (1 + 2j)
                                            ).astype("c8"))
        f.create_dataset("complex128", data=np.exp(1j * np.arange(100)),
                         chunks=(16,))
        f.create_dataset("struct", data=a)
        f.create_dataset("struct_chunked", data=a, chunks=(64,),
                         compression="gzip")
        f.attrs.create("cattr", a[:3])


@case("enum")
def w_enum(p):
    dt = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="i1")
    a = np.array([0, 1, 42] * 200, dtype="i1")
    with h5py.File(p, "w") as f:
        f.create_dataset("colors", data=a, dtype=dt)
        f.create_dataset("colors_k", data=a, dtype=dt, chunks=(100,),
                         compression="gzip")
        f.attrs.create("one", 42, dtype=dt)


@case("strings")
def w_strings(p):
    words = ["alpha", "βeta", "", "a much longer string " * 5, "x"] * 40
    with h5py.File(p, "w") as f:
        f.create_dataset("fixed_ascii", data=np.array(
            [w.encode("utf-8")[:16] for w in words], dtype="S16"))
        fu = f.create_dataset("fixed_utf8", shape=(len(words),),
                              dtype=h5py.string_dtype("utf-8", 16))
        fu.id.write(h5s.ALL, h5s.ALL, np.array(
            [w.encode("utf-8")[:16] for w in words], dtype="S16"),
            mtype=fu.id.get_type())
        f.create_dataset("vlen_utf8", data=words,
                         dtype=h5py.string_dtype())
        f.create_dataset("vlen_ascii", data=[w.encode("ascii", "replace")
                                             for w in words],
                         dtype=h5py.string_dtype("ascii"))
        f.create_dataset("vlen_chunked", data=words,
                         dtype=h5py.string_dtype(), chunks=(32,),
                         compression="gzip")
        f.create_dataset("scalar", data="just one string",
                         dtype=h5py.string_dtype())
        f.attrs["vstr"] = "attribute string ü"
        f.attrs["fstr"] = np.bytes_(b"fixed")
        f.attrs["strlist"] = words[:5]


@case("arrays")
def w_arrays(p):
    with h5py.File(p, "w") as f:
        a = np.arange(50 * 12, dtype="i4").reshape(50, 3, 4)
        f.create_dataset("array_i4", dtype=np.dtype(("<i4", (3, 4))),
                         shape=(50,))
        f["array_i4"][...] = a
        f.create_dataset("array_f8_k", shape=(40,),
                         dtype=np.dtype(("<f8", (2, 2))), chunks=(8,))
        f["array_f8_k"][...] = np.arange(160.0).reshape(40, 2, 2)
        vl = f.create_dataset("vlen_i4", (30,),
                              dtype=h5py.vlen_dtype("i4"))
        for i in range(30):
            vl[i] = np.arange(i, dtype="i4")
        vk = f.create_dataset("vlen_f8_k", (30,),
                              dtype=h5py.vlen_dtype("f8"), chunks=(8,))
        for i in range(30):
            vk[i] = np.arange(i % 7) / 3


@case("opaque")
def w_opaque(p):
    a = rng(1).integers(0, 256, 16 * 100, dtype="u1").view("V16")
    with h5py.File(p, "w") as f:
        f.create_dataset("opaque16", data=a)
        f.create_dataset("opaque16_k", data=a, chunks=(25,))
        odt = h5py.opaque_dtype(np.dtype("V8"))
        f.create_dataset("opaque_tagged", data=np.frombuffer(
            a[:10].tobytes(), dtype=odt))


@case("references")
def w_references(p):
    with h5py.File(p, "w") as f:
        g = f.create_group("g")
        d = f.create_dataset("data", data=np.arange(100).reshape(10, 10))
        g.create_dataset("inner", data=np.arange(5))
        r = f.create_dataset("objrefs", (3,), dtype=h5py.ref_dtype)
        r[0] = g.ref
        r[1] = d.ref
        r[2] = g["inner"].ref
        rk = f.create_dataset("objrefs_k", (20,), dtype=h5py.ref_dtype,
                              chunks=(5,))
        for i in range(20):
            rk[i] = d.ref if i % 2 else g.ref
        rr = f.create_dataset("regrefs", (3,), dtype=h5py.regionref_dtype)
        rr[0] = d.regionref[0:5, 2:4]
        rr[1] = d.regionref[9, :]
        rr[2] = d.regionref[[1, 3, 5], 7]
        d.attrs["self"] = d.ref
        d.attrs["region"] = d.regionref[1:3, 1:3]


# ---------------------------------------------------------------- filters

def _field(shape=(200, 300), seed=2):
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    return (np.sin(x / 17.0) * np.cos(y / 11.0) * 1000
            + rng(seed).normal(0, 1, shape)).astype("f4")


@case("gzip")
def w_gzip(p):
    a = _field()
    with h5py.File(p, "w") as f:
        f.create_dataset("gzip1", data=a, chunks=(32, 64), compression="gzip",
                         compression_opts=1)
        f.create_dataset("gzip9", data=a, chunks=(32, 64), compression="gzip",
                         compression_opts=9)
        f.create_dataset("int_gzip", data=(a * 10).astype("i4"),
                         chunks=(50, 50), compression="gzip")


@case("shuffle")
def w_shuffle(p):
    a = _field(seed=3)
    with h5py.File(p, "w") as f:
        f.create_dataset("shuffle_gzip", data=a, chunks=(40, 40),
                         shuffle=True, compression="gzip")
        f.create_dataset("shuffle_only", data=a, chunks=(40, 40),
                         shuffle=True)


@case("fletcher32")
def w_fletcher32(p):
    a = _field(seed=4)
    with h5py.File(p, "w") as f:
        f.create_dataset("f32", data=a, chunks=(64, 64), fletcher32=True)
        f.create_dataset("all3", data=a, chunks=(64, 64), fletcher32=True,
                         shuffle=True, compression="gzip")


@case("scaleoffset")
def w_scaleoffset(p):
    a = _field(seed=5)
    with h5py.File(p, "w") as f:
        f.create_dataset("so_float", data=a, chunks=(50, 60), scaleoffset=2)
        f.create_dataset("so_int", data=(a * 3).astype("i4"),
                         chunks=(50, 60), scaleoffset=0)
        f.create_dataset("so_int_gzip", data=(a * 3).astype("i2"),
                         chunks=(50, 60), scaleoffset=0, compression="gzip")


@case("nbit")
def w_nbit(p):
    data = (np.arange(4000, dtype="i4") * 37) % 4096 - 2048
    with h5py.File(p, "w") as f:
        dcpl = new_dcpl()
        dcpl.set_chunk((256,))
        dcpl.set_filter(h5z.FILTER_NBIT, h5z.FLAG_OPTIONAL)
        tid = h5t.STD_I32LE.copy()
        tid.set_precision(12)
        tid.set_offset(0)
        space = h5s.create_simple((4000,))
        ds = h5d.create(f.id, b"nbit12", tid, space, dcpl=dcpl)
        ds.write(h5s.ALL, h5s.ALL, data)
        check = f["nbit12"][...]
        T.check((check == data).all(), "nbit round trip failed in h5py")


@case("lz4")
def w_lz4(p):
    a = _field(seed=6)
    with h5py.File(p, "w") as f:
        f.create_dataset("lz4", data=a, chunks=(50, 100), compression=32004)
        f.create_dataset("lz4_int", data=np.arange(100000, dtype="i8"),
                         chunks=(10000,), compression=32004)


# ---------------------------------------------------------------- layouts

@case("contiguous", dump=("-p", "-H"))
def w_contiguous(p):
    with h5py.File(p, "w") as f:
        # Exactly 5 MiB and an odd size over 4 MiB: 5 block objects each
        # with block_size=1M.
        f.create_dataset("big", data=rng(7).random(5 * 131072))
        f.create_dataset("odd", data=rng(8).integers(
            0, 256, 5000003, dtype="u1"))
        f.create_dataset("small", data=np.arange(10, dtype="i2"))
        f.create_dataset("unwritten", shape=(1000,), dtype="f8")


@case("big_chunks", dump=("-p", "-H"))
def w_big_chunks(p):
    # 4 MiB chunks: still one object per chunk, whatever the block size.
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=rng(9).random((2048, 1024)).astype("f4"),
                         chunks=(1024, 1024))


@case("compact")
def w_compact(p):
    with h5py.File(p, "w") as f:
        dcpl = new_dcpl()
        dcpl.set_layout(h5d.COMPACT)
        space = h5s.create_simple((10, 20))
        ds = h5d.create(f.id, b"compact", h5t.STD_I32LE, space, dcpl=dcpl)
        ds.write(h5s.ALL, h5s.ALL, np.arange(200, dtype="i4").reshape(10, 20))
        dcpl2 = new_dcpl()
        dcpl2.set_layout(h5d.COMPACT)
        h5d.create(f.id, b"compact_str", h5t.C_S1.copy(),
                   h5s.create(h5s.SCALAR), dcpl=dcpl2)
        f.create_dataset("next_to_it", data=np.arange(50), chunks=(10,))


@case("chunk_indexes")
def w_chunk_indexes(p):
    a = np.arange(100 * 60, dtype="i4").reshape(100, 60)
    with new_latest(p) as f:
        f.create_dataset("fixed_array", data=a, chunks=(10, 10))
        f.create_dataset("ext_array", data=a, chunks=(10, 10),
                         maxshape=(None, 60))
        f.create_dataset("btree2", data=a, chunks=(10, 10),
                         maxshape=(None, None))
        f.create_dataset("single", data=a, chunks=(100, 60))
        f.create_dataset("single_gzip", data=a, chunks=(100, 60),
                         compression="gzip")
        dcpl = new_dcpl()
        dcpl.set_chunk((25, 30))
        dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)
        ds = h5d.create(f.id, b"implicit", h5t.STD_I32LE,
                        h5s.create_simple((100, 60)), dcpl=dcpl)
        ds.write(h5s.ALL, h5s.ALL, a)
        f.create_dataset("many_3d", data=np.arange(40 ** 3, dtype="i2")
                         .reshape(40, 40, 40), chunks=(4, 4, 4))


@case("chunk_indexes_v1")
def w_chunk_indexes_v1(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("btree1_3d", data=np.arange(40 ** 3, dtype="i2")
                         .reshape(40, 40, 40), chunks=(4, 4, 4))
        f.create_dataset("edge", data=np.arange(101 * 33, dtype="f8")
                         .reshape(101, 33), chunks=(10, 10))


@case("userblock")
def w_userblock(p):
    with h5py.File(p, "w", userblock_size=512) as f:
        f.create_dataset("x", data=np.arange(1000), chunks=(100,))
    with open(p, "r+b") as f:
        f.write(b"user block text: written after the HDF5 library closed\n")


# ---------------------------------------------------------------- structure

@case("groups")
def w_groups(p):
    with h5py.File(p, "w") as f:
        g = f
        for i in range(6):
            g = g.create_group("level%d" % i)
            g.create_dataset("d", data=np.arange(i + 1), chunks=(1,))
        many = f.create_group("many")
        for i in range(60):
            many.create_group("g%02d" % i).attrs["i"] = i
        t = group(f, "ordered", track_order=True)
        for n in ("zz", "aa", "mm"):
            t.create_dataset(n, data=[1, 2, 3])
    with h5py.File(p, "a") as f:
        f["many/g07"].create_dataset("late", data=np.ones((5, 5)),
                                     chunks=(2, 2))


@case("groups_latest")
def w_groups_latest(p):
    with new_latest(p) as f:
        g = group(f, "dense")
        for i in range(40):
            g.create_dataset("d%02d" % i, data=np.arange(i + 4),
                             chunks=(4,))
        group(f, "a/b/c/d/e").create_dataset("deep", data=[1.5])


@case("attributes")
def w_attributes(p):
    with h5py.File(p, "w") as f:
        d = f.create_dataset("d", data=np.arange(10), chunks=(5,))
        for obj in (f, d, f.create_group("g")):
            obj.attrs["int"] = 7
            obj.attrs["float"] = np.float32(2.5)
            obj.attrs["arr"] = np.arange(12).reshape(3, 4)
            obj.attrs["str"] = "text"
            obj.attrs["empty"] = h5py.Empty("f8")
            obj.attrs.create("u8", np.arange(3, dtype="u8"))


@case("dense_attributes")
def w_dense_attributes(p):
    with new_latest(p) as f:
        d = f.create_dataset("d", data=np.arange(100), chunks=(10,))
        g = group(f, "g")
        for obj in (f, d, g):
            for i in range(20):
                obj.attrs["attr%02d" % i] = np.arange(i + 1, dtype="i4")
        # Over 64 KiB: stored densely whatever the count.
        g.attrs["huge"] = np.arange(20000, dtype="f8")
        t = group(f, "tracked", track_order=True)
        for i in range(12):
            t.attrs["z%02d" % (12 - i)] = i


@case("extlink_target")
def w_extlink_target(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("target/data", data=np.arange(20), chunks=(5,))
        f.create_group("grp")


@case("links")
def w_links(p):
    with h5py.File(p, "w") as f:
        d = f.create_dataset("real", data=np.arange(30), chunks=(10,))
        f["soft"] = h5py.SoftLink("/real")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["hard_alias"] = d
        f.create_group("sub")["hard_alias2"] = d
        f["ext"] = h5py.ExternalLink("extlink_target.h5", "/target/data")
        f["ext_grp"] = h5py.ExternalLink("extlink_target.h5", "/grp")
        f["ext_missing"] = h5py.ExternalLink("no_such_file.h5", "/x")


@case("resizable")
def w_resizable(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("grow1", data=np.arange(100), chunks=(64,),
                         maxshape=(None,))
        f.create_dataset("grow2", data=np.ones((10, 10)), chunks=(8, 8),
                         maxshape=(None, None), compression="gzip")
        f.create_dataset("shrink", data=np.arange(1000), chunks=(100,),
                         maxshape=(None,))
    with h5py.File(p, "a") as f:
        d = f["grow1"]
        d.resize((1000,))
        d[100:] = np.arange(100, 1000) * 2
        e = f["grow2"]
        e.resize((50, 30))
        e[40:, 20:] = 5
        f["shrink"].resize((250,))
    with h5py.File(p, "r+") as f:
        f["grow1"].resize((1500,))
        f["grow1"][1400:] = -1


@case("resizable_latest")
def w_resizable_latest(p):
    with new_latest(p) as f:
        f.create_dataset("ea", data=np.arange(100), chunks=(16,),
                         maxshape=(None,))
        f.create_dataset("bt2", data=np.ones((10, 10)), chunks=(4, 4),
                         maxshape=(None, None))
    with h5py.File(p, "a", libver="latest") as f:
        f["ea"].resize((5000,))
        f["ea"][4000:] = 3
        f["bt2"].resize((100, 40))
        f["bt2"][90:, 30:] = 2


@case("empty")
def w_empty(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("null", data=h5py.Empty("f4"))
        f.create_dataset("zero_len", shape=(0,), dtype="i4")
        f.create_dataset("zero_chunked", shape=(0,), dtype="i4",
                         chunks=(10,), maxshape=(None,))
        f.create_dataset("zero_2d", shape=(0, 10), dtype="f8",
                         chunks=(5, 5), maxshape=(None, 10))
        f.create_dataset("scalar", data=3.25)
        f.create_group("empty_group")


@case("fill")
def w_fill(p):
    with h5py.File(p, "w") as f:
        d = f.create_dataset("sparse", shape=(100, 100), dtype="i4",
                             chunks=(10, 10), fillvalue=42)
        d[0:10, 0:10] = 1
        d[55, 55] = 2
        d[99, 0:20] = 3
        f.create_dataset("never", shape=(1000,), dtype="f8", chunks=(100,),
                         fillvalue=-1.5)
        f.create_dataset("contig_fill", shape=(500,), dtype="i2",
                         fillvalue=9)
        cdt = np.dtype([("a", "i4"), ("b", "f4")])
        fv = np.array((7, 0.5), dtype=cdt)
        c = f.create_dataset("cmpd_fill", shape=(64,), dtype=cdt,
                             chunks=(16,), fillvalue=fv)
        c[20] = (1, 1.0)
        dcpl = new_dcpl()
        dcpl.set_chunk((16,))
        dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_value(np.array(5, dtype="i4"))
        ds = h5d.create(f.id, b"early", h5t.STD_I32LE,
                        h5s.create_simple((100,)), dcpl=dcpl)
        ds.write(h5s.ALL, h5s.ALL, np.full(100, 5, dtype="i4"))
        dcpl3 = new_dcpl()
        dcpl3.set_chunk((16,))
        dcpl3.set_alloc_time(h5d.ALLOC_TIME_EARLY)
        dcpl3.set_fill_time(h5d.FILL_TIME_NEVER)
        h5d.create(f.id, b"early_never_filled", h5t.STD_I32LE,
                   h5s.create_simple((64,)), dcpl=dcpl3)


@case("odd_names")
def w_odd_names(p):
    names = ["with space", "@leading_at", "100%", "ctl\x01x", "del\x7fx",
             "ünïcode", "tab\there", "%41"]
    with h5py.File(p, "w") as f:
        g = f.create_group("@grp %")
        for i, n in enumerate(names):
            g.create_dataset(n, data=np.arange(10) + i, chunks=(5,))
            f.create_dataset(n, data=np.arange(8.0) * i, chunks=(4,))


# ---------------------------------------------------------------- non-HDF5

def _plain(content):
    def w(p):
        with open(p, "wb") as f:
            for i in range(0, len(content), 65536):
                f.write(content[i:i + 65536])
    return w


def _valid_h5_bytes():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        q = os.path.join(d, "x.h5")
        with h5py.File(q, "w") as f:
            f.create_dataset("x", data=np.arange(50000), chunks=(1000,))
        with open(q, "rb") as f:
            return f.read()


_VALID = _valid_h5_bytes()
for _name, _content in (
        ("zero.h5", b""),
        ("zero.bin", b""),
        ("random.bin", rng(10).integers(0, 256, 3 << 20, dtype="u1")
         .tobytes()),
        ("notes.txt", "".join("line %d of a text file\n" % i
                              for i in range(2000)).encode()),
        ("truncated.h5", _VALID[:len(_VALID) // 2]),
        ("truncated_tiny.h5", _VALID[:100]),
        ("manifest_magic.h5", T.MAGIC + rng(11).integers(
            0, 256, 5000, dtype="u1").tobytes()),
        ("manifest_magic_only", T.MAGIC),
        ("hdf5_sig_garbage.h5", T.HDF5_SIG + b"\xff" * 3000)):
    CASES.append(("plain:" + _name, _plain(_content), "plain"))


# ---------------------------------------------------------------- driver

def fname(name, kind):
    if kind == "plain":
        return name.split(":", 1)[1]
    return name + ".h5"


def main():
    R = T.Runner("test_types")
    cases = [c for c in CASES if R.wanted(c[0])
             or c[0] == "extlink_target"]
    with T.Workspace(R.binary, opts="block_size=" + BLOCK,
                     name="types") as ws:
        ws.start()
        written = []
        for name, fn, kind in cases:
            P = fname(name, kind)

            def write(fn=fn, P=P):
                fn(ws.l(P))
                fn(ws.m(P))
                return "%d bytes" % os.path.getsize(ws.l(P))
            if R.run(name + ":write", write) is None:
                continue
            written.append((name, kind, P))
            # Same mount, right after the last close.
            R.run(name + ":readback", T.assert_same_bytes, ws.l(P), ws.m(P))
        R.step("unmount", ws.stop)
        R.step("mount again", ws.start)
        bs = T.parse_size(BLOCK)
        for name, kind, P in written:
            def verify(P=P, kind=kind, name=name):
                T.assert_same_bytes(ws.l(P), ws.m(P))
                if kind == "plain":
                    return T.assert_plain_object(ws.store, P, ws.l(P))
                T.assert_h5dump_equal(ws.l(P), ws.m(P), args=DUMP[name])
                return T.assert_store_layout(ws.store, P, ws.l(P), bs)
            R.run(name + ":remount", verify)
        # Nothing but our files (and the hidden metadata) at the root.
        if not T.FAKE:
            def listing():
                want = sorted(P for _, _, P in written)
                got = sorted(os.listdir(ws.m()))
                T.check(got == want, "readdir of the mount: %s, expected %s"
                        % (got, want))
            R.run("readdir", listing)
    R.finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        T.cleanup_all()
