"""The C VM's verifier, property by property (vm/VERIFIER.md has the table).

Each test crafts a file that breaks exactly one property the loader
guarantees and checks the named error and its byte offset, through the
runner (`lnnvm verify`) and through the library (ctypes). The basic error
classes already covered by tests/test_loader.py (one crafted file per
status) are not repeated here; these tests go after the corners: sentinel
indices (0xFFFF, 0xFFFFFFFF), -1 and too-large axes, products that overflow
32 or 64 bits, offsets just outside their region, huge counts, the limits
that bound verify and run time, and reads before writes.
"""

from __future__ import annotations

import ctypes
import re
import struct
from dataclasses import replace

import numpy as np
import pytest
from conftest import lnnvm
from lnnedge import isa, lnnb
from lnnedge.lnnb import Program, TensorEntry
from lnnedge.runtime import CVM, VMError, load_library

CONST, ARENA, INPUT, OUTPUT = (isa.const(k) for k in ("REG_CONST", "REG_ARENA", "REG_INPUT", "REG_OUTPUT"))
SEC_TENSORS, SEC_CONSTS, SEC_CODE = (isa.const(k) for k in ("SEC_TENSORS", "SEC_CONSTS", "SEC_CODE"))
MAX_CODE_WORDS = isa.const("MAX_CODE_WORDS")
MAX_TRIP_PRODUCT = isa.const("MAX_TRIP_PRODUCT")
MAX_STEPS = isa.const("MAX_STEPS")
MAX_WRITE_RANGES = isa.const("MAX_WRITE_RANGES")
E = isa.encode

# t0 x[B,2] input, t1 W[3,2], t2 b[3], t3 y[B,3] output, t4 h[B,3] row+0, t5 dt[] per-step table,
# t6 g[3] fixed+0, t7 h2[B,3] row+12 (right after h), t8 hh[B,6] row+0 (= h and h2), t9 z[B,3] row+32
X, W, BIAS, Y, H, DT, G, H2, HH, Z = range(10)
TENSORS = (
    TensorEntry((1, 2), INPUT, 0, batched=True),
    TensorEntry((3, 2), CONST, 0),
    TensorEntry((3,), CONST, 32),
    TensorEntry((1, 3), OUTPUT, 0, batched=True),
    TensorEntry((1, 3), ARENA, 0, batched=True),
    TensorEntry((), CONST, 48, stride=4),
    TensorEntry((3,), ARENA, 0),
    TensorEntry((1, 3), ARENA, 12, batched=True),
    TensorEntry((1, 6), ARENA, 0, batched=True),
    TensorEntry((1, 3), ARENA, 32, batched=True),
)
CONSTS = np.array([1, 2, 3, 4, 5, 6, 0, 0, 0.5, -1, 2, 0, 0.25, 0.75], dtype="<f4").tobytes()
LINEAR_H = (E("PUSH", 0, X), E("PUSH", 0, W), E("PUSH", 0, BIAS), E("LINEAR", 0, H))
# h = W x + b; twice: y = dt_i * h, h = y + h; y = -h
CODE = (*LINEAR_H, E("DROP"),
        E("LOOP", 0, 2), E("PUSH", 0, DT), E("PUSH", 0, H), E("MUL", 0, Y), E("PUSH", 0, H), E("ADD", 0, H),
        E("DROP"), E("END"),
        E("PUSH", 0, H), E("NEG", 0, Y), E("DROP"))


def build(code=CODE, tensors=TENSORS, consts=CONSTS, **changes) -> bytes:
    base = Program(tensors=tuple(tensors), consts=consts, code=tuple(code), arena_fixed=16, arena_row=48,
                   num_inputs=1, num_outputs=1)
    return lnnb.write(replace(base, **changes))


def with_tensor(index: int, **changes) -> bytes:
    tensors = list(TENSORS)
    tensors[index] = replace(tensors[index], **changes)
    return build(tensors=tensors)


def patched(data: bytes, offset: int, fmt: str, value, fix_crc: bool = True) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return lnnb.refresh_crc(bytes(out)) if fix_crc else bytes(out)


def section_entry(data: bytes, kind: int) -> int:
    """File offset of the section-table entry of `kind`."""
    for i in range(struct.unpack_from("<I", data, 16)[0]):
        if struct.unpack_from("<I", data, 64 + 16 * i)[0] == kind:
            return 64 + 16 * i
    raise KeyError(kind)


def code_at(data: bytes, pc: int = 0) -> int:
    return lnnb.section_offsets(data)[SEC_CODE][0] + 4 * pc


def tensor_at(data: bytes, t: int, field: int = 0) -> int:
    return lnnb.section_offsets(data)[SEC_TENSORS][0] + 32 * t + field


# tensor entry field offsets (lnn_format.h)
T_DTYPE, T_RANK, T_REGION, T_FLAGS, T_DIMS, T_OFFSET, T_STRIDE = 0, 1, 2, 3, 4, 20, 24


@pytest.fixture(scope="module")
def vm(host_build, tmp_path_factory):
    """expect(data, name, offset): both the runner and the library reject with name at offset;
    accept(data): both accept."""
    folder = tmp_path_factory.mktemp("verifier")
    counter = iter(range(10 ** 6))

    class Checker:
        library = host_build.library

        def _file(self, data: bytes):
            path = folder / f"f{next(counter)}.lnnb"
            path.write_bytes(data)
            return path

        def expect(self, data: bytes, name: str, offset: int | None = None) -> None:
            proc = lnnvm(host_build.runner, "verify", self._file(data))
            assert proc.returncode == 3, proc.stdout + proc.stderr
            want = f": {name} at byte " + (f"{offset}:" if offset is not None else "")
            assert want in proc.stderr, proc.stderr
            with pytest.raises(VMError) as err:
                CVM(data, library=host_build.library)
            assert err.value.name == name
            if offset is not None:
                assert err.value.offset == offset

        def accept(self, data: bytes, max_batch: int = 1) -> CVM:
            proc = lnnvm(host_build.runner, "verify", self._file(data))
            assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
            return CVM(data, max_batch=max_batch, library=host_build.library)

    return Checker()


def test_base_program_is_valid_and_runs(vm):
    x = np.array([[1, -1], [0.5, 2]], np.float32)
    h = x @ np.array([[1, 2], [3, 4], [5, 6]], np.float32).T + np.array([0.5, -1, 2], np.float32)
    for dt in (0.25, 0.75):
        h = np.float32(dt) * h + h
    np.testing.assert_allclose(vm.accept(build(), max_batch=2).run([x])[0], -h, rtol=1e-6)


# ---- arguments, header -------------------------------------------------------------------------------


def test_zero_length_buffer_is_an_argument_error(host_build):
    lib = load_library(str(host_build.library))
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    buf = ctypes.create_string_buffer(64)
    status = lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf), 0, None, 0)
    assert lib.lnn_status_name(status).decode() == "E_ARG"


@pytest.mark.parametrize("length", [0, 1, 4, 8, 16, 63])
def test_files_shorter_than_the_header_are_truncated(vm, length):
    """An 8-byte file is in test_loader's BROKEN; every other short length too (0: E_ARG)."""
    data = build()[:length]
    if length == 0:
        with pytest.raises(VMError, match="E_ARG"):
            CVM(data, library=vm.library)
    else:
        vm.expect(data, "E_TRUNCATED", 0)


def test_minor_version_newer_than_the_vm_is_refused(vm):
    vm.expect(patched(build(), 6, "<H", isa.const("VERSION_MINOR") + 1, fix_crc=False), "E_VERSION", 6)


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0x80000000])
def test_file_size_larger_than_the_buffer_is_truncated(vm, size):
    vm.expect(patched(build(), 8, "<I", size, fix_crc=False), "E_TRUNCATED", 8)


@pytest.mark.parametrize("count", [0, 9, 0xFFFF, 0xFFFFFFFF])
def test_huge_or_zero_num_sections_is_refused(vm, count):
    vm.expect(patched(build(), 16, "<I", count), "E_HEADER", 16)


@pytest.mark.parametrize("count", [0, 0x10000, 0x08000000, 0xFFFFFFFF])
def test_huge_or_zero_num_tensors_is_refused(vm, count):
    """0x08000000 * 32 wraps to 0 in 32 bits: the limit is checked before any product."""
    vm.expect(patched(build(), 20, "<I", count), "E_HEADER", 20)


@pytest.mark.parametrize("field,count", [(32, 0), (32, 17), (32, 0xFFFF), (34, 0), (34, 0xFFFF)])
def test_io_counts_outside_1_to_16_are_refused(vm, field, count):
    vm.expect(patched(build(), field, "<H", count), "E_HEADER", field)


# ---- section table ------------------------------------------------------------------------------------


def test_section_table_past_the_end_is_truncated(vm):
    data = build()[:64 + 16 * 2]  # room for 2 of the 3 entries
    data = patched(data, 8, "<I", len(data))
    vm.expect(data, "E_TRUNCATED", 16)


@pytest.mark.parametrize("kind", [0, 7, 0xFFFFFFFF])
def test_unknown_section_kind_is_refused(vm, kind):
    entry = section_entry(build(), SEC_CODE)
    vm.expect(patched(build(), entry, "<I", kind), "E_SECTION", entry)


def test_duplicate_section_kind_is_refused(vm):
    entry = section_entry(build(), SEC_CODE)
    vm.expect(patched(build(), entry, "<I", SEC_CONSTS), "E_SECTION", entry)


def test_section_reserved_field_must_be_zero(vm):
    entry = section_entry(build(), SEC_CONSTS)
    vm.expect(patched(build(), entry + 12, "<I", 0xFFFFFFFF), "E_SECTION", entry + 12)


def test_section_inside_the_header_or_table_is_refused(vm):
    entry = section_entry(build(), SEC_CONSTS)
    vm.expect(patched(build(), entry + 4, "<I", 0), "E_SECTION", entry + 4)


@pytest.mark.parametrize("offset", [0xFFFFFFFF, 0xFFFFFFC0])
def test_section_offset_past_the_file_is_truncated(vm, offset):
    entry = section_entry(build(), SEC_CONSTS)
    vm.expect(patched(build(), entry + 4, "<I", offset), "E_TRUNCATED", entry + 4)


def test_section_size_overflowing_32_bits_is_truncated(vm):
    """offset + 0xFFFFFFFF wraps to offset - 1 in 32 bits; the sum is taken in 64."""
    entry = section_entry(build(), SEC_CODE)
    vm.expect(patched(build(), entry + 8, "<I", 0xFFFFFFFF), "E_TRUNCATED", entry + 8)


@pytest.mark.parametrize("kind,shift", [(SEC_TENSORS, 2), (SEC_CONSTS, 4), (SEC_CONSTS, 32), (SEC_CODE, -2)])
def test_section_alignment(vm, kind, shift):
    data = build()
    entry = section_entry(data, kind)
    offset = struct.unpack_from("<I", data, entry + 4)[0]
    vm.expect(patched(data, entry + 4, "<I", offset + shift), "E_SECTION", entry + 4)


def test_tensor_section_size_must_be_32_per_tensor(vm):
    data = build()
    entry = section_entry(data, SEC_TENSORS)
    vm.expect(patched(data, entry + 8, "<I", 32 * len(TENSORS) + 32), "E_SECTION", entry + 8)


@pytest.mark.parametrize("size", [0, 2, 6])
def test_code_section_size_must_be_a_nonzero_multiple_of_4(vm, size):
    data = build()
    entry = section_entry(data, SEC_CODE)
    vm.expect(patched(data, entry + 8, "<I", size), "E_SECTION", entry + 8)


def test_code_longer_than_the_limit_is_refused(vm):
    body = (E("PUSH", 0, X), E("DROP"))
    words = body * (MAX_CODE_WORDS // 2) + (E("PUSH", 0, X), E("DROP"))  # MAX_CODE_WORDS + 2
    data = build(code=words)
    vm.expect(data, "E_LIMIT", section_entry(data, SEC_CODE) + 8)


def test_code_of_exactly_the_limit_is_accepted(vm):
    words = (E("PUSH", 0, X), E("DROP")) * (MAX_CODE_WORDS // 2)
    vm.accept(build(code=words))


# ---- tensor entries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [5, 255])
def test_rank_above_4_is_refused(vm, rank):
    vm.expect(patched(build(), tensor_at(build(), W, T_RANK), "<B", rank), "E_TENSOR",
              tensor_at(build(), W, T_RANK))


@pytest.mark.parametrize("region", [4, 255])
def test_unknown_region_is_refused(vm, region):
    at = tensor_at(build(), W, T_REGION)
    vm.expect(patched(build(), at, "<B", region), "E_TENSOR", at)


@pytest.mark.parametrize("flags", [2, 0x80, 0xFF])
def test_unknown_tensor_flags_are_refused(vm, flags):
    at = tensor_at(build(), W, T_FLAGS)
    vm.expect(patched(build(), at, "<B", flags), "E_TENSOR", at)


def test_zero_dim_and_dim_past_the_rank_are_refused(vm):
    at = tensor_at(build(), W, T_DIMS + 4)
    vm.expect(patched(build(), at, "<I", 0), "E_TENSOR", at)
    at = tensor_at(build(), BIAS, T_DIMS + 4)  # rank 1: dims[1] must be 0
    vm.expect(patched(build(), at, "<I", 1), "E_TENSOR", at)


@pytest.mark.parametrize("dims,bad", [
    ((0x10000, 0x10000), 1),                    # 2^32: 0 in 32-bit arithmetic
    ((0x10000, 0x10000, 0x10000, 0x10000), 1),  # 2^64: 0 in 64-bit arithmetic
    ((0xFFFFFFFF,), 0),                         # one dim far past the limit
    ((0x2000, 0x2000, 2), 2),                   # 2^27 > 2^26 only at the last dim
    ((3, 0x55555556), 1),                       # 3 * 0x55555556 = 2 mod 2^32
])
def test_element_count_products_never_wrap(vm, dims, bad):
    data = with_tensor(G, dims=dims)
    vm.expect(data, "E_TENSOR", tensor_at(data, G, T_DIMS + 4 * bad))


def test_element_limit_is_per_tensor(vm):
    limit = isa.const("MAX_ELEMENTS")
    ok = with_tensor(G, dims=(limit,))
    data = patched(ok, 24, "<I", 4 * limit)  # arena_fixed: the whole tensor fits
    vm.accept(data)
    data = patched(with_tensor(G, dims=(limit + 1,)), 24, "<I", 4 * limit + 4)
    vm.expect(data, "E_TENSOR", tensor_at(data, G, T_DIMS))


def test_batch_flag_needs_rank_1_a_writable_region_and_dim0_of_1(vm):
    data = with_tensor(W, batched=True, dims=(1, 2))  # a batched constant
    vm.expect(data, "E_TENSOR", tensor_at(data, W, T_FLAGS))
    data = patched(build(), tensor_at(build(), DT, T_FLAGS), "<B", 1)  # rank 0
    vm.expect(data, "E_TENSOR", tensor_at(data, DT, T_FLAGS))
    data = with_tensor(H, dims=(2, 3))  # batched, dim 0 stored as 2
    vm.expect(data, "E_TENSOR", tensor_at(data, H, T_DIMS))


def test_stride_only_on_constants(vm):
    data = with_tensor(H, stride=4)
    vm.expect(data, "E_TENSOR", tensor_at(data, H, T_STRIDE))


@pytest.mark.parametrize("offset", [0xFFFFFFFC, 0xFFFFFFF0, len(CONSTS) - 8, len(CONSTS)])
def test_constant_past_the_constants_section(vm, offset):
    """0xFFFFFFFC + 12 bytes wraps to 8 in 32 bits; sums are taken in 64."""
    data = with_tensor(BIAS, offset=offset)
    vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, BIAS, T_OFFSET))


def test_constant_offset_and_stride_must_be_4_aligned(vm):
    data = with_tensor(BIAS, offset=34)
    vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, BIAS, T_OFFSET))
    data = with_tensor(DT, stride=2)
    vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, DT, T_STRIDE))


@pytest.mark.parametrize("index,offset", [
    (H, 0xFFFFFFFC),  # batched: wraps in 32 bits
    (H, 40),          # batched: 40 + 12 > arena_row 48
    (G, 8),           # fixed: 8 + 12 > arena_fixed 16
    (G, 0xFFFFFFF8),
    (H, 2),           # misaligned
])
def test_arena_tensor_outside_its_part(vm, index, offset):
    data = with_tensor(index, offset=offset)
    vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, index, T_OFFSET))


def test_batched_and_fixed_parts_are_checked_against_their_own_size(vm):
    # g[3] unbatched at 20: inside arena_row (48) but not arena_fixed (16)
    data = with_tensor(G, offset=20)
    vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, G, T_OFFSET))


@pytest.mark.parametrize("number", [1, 16, 0xFFFF, 0xFFFFFFFF])
def test_io_number_out_of_range(vm, number):
    data = with_tensor(X, offset=number)
    vm.expect(data, "E_IO", tensor_at(data, X, T_OFFSET))


def test_io_numbers_exactly_once(vm):
    tensors = (*TENSORS, TensorEntry((1, 3), OUTPUT, 0, batched=True))  # output 0 twice
    data = build(tensors=tensors)
    vm.expect(data, "E_IO", tensor_at(data, len(TENSORS), T_OFFSET))
    data = build(num_outputs=2)  # output 1 declared, no tensor
    vm.expect(data, "E_IO", 34)


# ---- code: operands -------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", [E("PUSH", 0, 0xFFFF), E("PUSH", 0, len(TENSORS)), E("ZERO", 0, 0xFFFF),
                                  E("CONCAT", 1, 0xFFFF)])
def test_sentinel_and_past_the_end_tensor_indices(vm, word):
    data = build(code=(word, E("DROP")))
    vm.expect(data, "E_OPERAND", code_at(data))


def test_tensor_index_0xffff_is_never_valid():
    """num_tensors <= 65535, so index 0xFFFF is always >= num_tensors."""
    assert isa.const("MAX_TENSORS") == 0xFFFF


@pytest.mark.parametrize("axis", [0xFF, 2, 4])
def test_concat_axis_negative_or_past_the_rank(vm, axis):
    code = (E("PUSH", 0, H), E("PUSH", 0, H2), E("CONCAT", axis, HH), E("DROP"))
    data = build(code=(*LINEAR_H, E("DROP"), *LINEAR_H[:3], E("LINEAR", 0, H2), E("DROP"), *code))
    vm.expect(data, "E_OPERAND", code_at(data, 12))


def test_concat_axis_inside_the_rank_is_accepted(vm):
    tensors = (*TENSORS, TensorEntry((1, 6), ARENA, 48, batched=True))  # t10 [B,6], apart from h, h2
    code = (E("PUSH", 0, H), E("PUSH", 0, H2), E("CONCAT", 1, 10), E("DROP"))
    vm.accept(build(tensors=tensors, arena_row=72,
                    code=(*LINEAR_H, E("DROP"), *LINEAR_H[:3], E("LINEAR", 0, H2), E("DROP"), *code)))


@pytest.mark.parametrize("word", [E("DROP", 1, 0), E("DROP", 0, 1), E("END", 0, 0xFFFF), E("PUSH", 1, X),
                                  E("NEG", 0xFF, Y)])
def test_reserved_operand_bits_must_be_zero(vm, word):
    data = build(code=(E("PUSH", 0, X), word, E("DROP")))
    vm.expect(data, "E_OPERAND", code_at(data, 1))


def test_trip_count_zero_is_refused(vm):
    data = build(code=(E("LOOP", 0, 0), E("END")))
    vm.expect(data, "E_OPERAND", code_at(data))


@pytest.mark.parametrize("opcode", [0x00, 0x07, 0x0F, 0x39, 0x4F, 0x79, 0xFF])  # unused bytes
def test_unknown_opcodes(vm, opcode):
    data = build(code=(E("PUSH", 0, X), opcode, E("DROP")))
    vm.expect(data, "E_OPCODE", code_at(data, 1))


# ---- code: stack and loops --------------------------------------------------------------------------------


def test_stack_depth_is_checked_at_every_instruction(vm):
    """LINEAR pops 3: with 2 on the stack it underflows even though the program is balanced overall."""
    data = build(code=(E("PUSH", 0, X), E("PUSH", 0, W), E("LINEAR", 0, H), E("DROP")))
    vm.expect(data, "E_UNDERFLOW", code_at(data, 2))
    deepest = (E("PUSH", 0, X),) * isa.const("MAX_STACK") + (E("DROP"),) * isa.const("MAX_STACK")
    vm.accept(build(code=deepest))


def test_loop_nesting_deeper_than_the_limit(vm):
    depth = isa.const("MAX_LOOP_DEPTH")
    data = build(code=(E("LOOP", 0, 1),) * (depth + 1) + (E("END"),) * (depth + 1))
    vm.expect(data, "E_LOOP", code_at(data, depth))
    vm.accept(build(code=(E("LOOP", 0, 1),) * depth + (E("END"),) * depth))


def test_end_without_loop_and_unclosed_loop(vm):
    data = build(code=(E("PUSH", 0, X), E("DROP"), E("END")))
    vm.expect(data, "E_LOOP", code_at(data, 2))
    data = build(code=(E("LOOP", 0, 2), E("LOOP", 0, 2), E("END")))
    vm.expect(data, "E_LOOP", code_at(data, 0))  # the LOOP left open


def test_loop_body_must_leave_the_same_tensors_not_just_the_same_depth(vm):
    code = (*LINEAR_H, E("LOOP", 0, 2), E("DROP"), E("PUSH", 0, X), E("END"), E("DROP"))
    data = build(code=code)
    vm.expect(data, "E_LOOP", code_at(data, 7))


def test_trip_count_product_limit(vm):
    """65535 * 17 > 2^20: the second LOOP is refused; 65535 * 16 fits."""
    data = build(code=(E("LOOP", 0, 0xFFFF), E("LOOP", 0, 17), E("END"), E("END")))
    vm.expect(data, "E_LIMIT", code_at(data, 1))
    assert 0xFFFF * 16 <= MAX_TRIP_PRODUCT < 0xFFFF * 17
    vm.accept(build(code=(E("LOOP", 0, 0xFFFF), E("LOOP", 0, 16), E("END"), E("END"))))


def test_four_nested_maximal_trip_counts_are_refused(vm):
    """65535^4 would be 1.8e19 iterations; the product is checked at each LOOP, in 64 bits."""
    data = build(code=(E("LOOP", 0, 0xFFFF),) * 4 + (E("END"),) * 4)
    vm.expect(data, "E_LIMIT", code_at(data, 1))


def executed_words(code) -> list[int]:
    """Instructions run by one lnn_run after each word (the documented rule: a word runs once per
    iteration of the loops around it; END once per iteration of its own loop)."""
    runs, stack, total, out = 1, [], 0, []
    for word in code:
        op, _, b = isa.decode(word)
        name = isa.opcode_by_code()[op].name
        total += runs
        out.append(total)
        if name == "LOOP":
            stack.append(runs)
            runs *= b
        elif name == "END":
            runs = stack.pop()
    return out


def test_executed_instruction_limit(vm):
    """2^20 iterations (1024 x 1024) of a body of 2-word pairs: 16 body words are 2^24 executions."""
    def program(pairs):
        return (E("LOOP", 0, 1024), E("LOOP", 0, 1024), *(E("PUSH", 0, X), E("DROP")) * pairs, E("END"),
                E("END"))
    steps = executed_words(program(8))
    first_over = next(pc for pc, total in enumerate(steps) if total > MAX_STEPS)
    data = build(code=program(8))
    vm.expect(data, "E_LIMIT", code_at(data, first_over))
    assert executed_words(program(7))[-1] <= MAX_STEPS
    vm.accept(build(code=program(7)))


def test_strided_constant_outside_loops_and_past_the_section(vm):
    data = build(code=(E("LOOP", 0, 3), E("PUSH", 0, DT), E("DROP"), E("END")))  # dt has 2 rows
    vm.expect(data, "E_STRIDE", code_at(data, 1))
    data = patched(build(code=(E("LOOP", 0, 3), E("PUSH", 0, DT), E("DROP"), E("END"))),
                   tensor_at(build(), DT, T_STRIDE), "<I", 0xFFFFFFFC)  # stride * 2 wraps in 32 bits
    vm.expect(data, "E_STRIDE", code_at(data, 1))


def test_strided_constant_is_checked_against_the_innermost_loop(vm):
    ok = (E("LOOP", 0, 9), E("LOOP", 0, 2), E("PUSH", 0, DT), E("DROP"), E("END"), E("END"))
    vm.accept(build(code=ok))
    bad = (E("LOOP", 0, 2), E("LOOP", 0, 9), E("PUSH", 0, DT), E("DROP"), E("END"), E("END"))
    data = build(code=bad)
    vm.expect(data, "E_STRIDE", code_at(data, 2))


# Issue 15, defect 1: dt pushed again in an inner loop and read after that loop ended. The interpreter read
# the row of the PUSH (1), the run plan the row of the loop's counter when read (2: past the constants, which
# end with dt's 2 rows; with a third row in bounds, a different value). The verifier had checked row 1 only.
# dt is on the stack at the inner LOOP (pc 7), and must be: the stack at END holds what it held at LOOP.
STRIDED_AFTER_END = (*LINEAR_H, E("DROP"),
                     E("LOOP", 0, 2), E("PUSH", 0, DT),
                     E("LOOP", 0, 2), E("DROP"), E("PUSH", 0, DT), E("END"),
                     E("PUSH", 0, H), E("MUL", 0, Y), E("DROP"), E("END"))


@pytest.mark.parametrize("rows", [2, 3])
def test_strided_operand_on_the_stack_at_a_loop_is_refused(vm, rows):
    """Fails on 31302ac: accepted, then `lnnvm run` read past the constants (rows 2) or the plan and
    --no-plan gave different outputs (rows 3)."""
    consts = CONSTS + np.float32(9).tobytes() * (rows - 2)
    data = build(code=STRIDED_AFTER_END, consts=consts)
    vm.expect(data, "E_STRIDE", code_at(data, 7))


def test_strided_operand_read_in_its_iteration_agrees_in_plan_and_interpreter(vm):
    """The accepted form of the program above: dt read in the iteration it was pushed in, inside the inner
    loop, at the inner loop's row; the run plan and the interpreter give the expected values."""
    code = (*LINEAR_H, E("DROP"),
            E("LOOP", 0, 2), E("LOOP", 0, 2), E("PUSH", 0, DT), E("PUSH", 0, H), E("MUL", 0, Y),
            E("PUSH", 0, H), E("ADD", 0, H), E("DROP"), E("END"), E("END"))
    x = np.array([[1, -1], [0.5, 2]], np.float32)
    h = x @ np.array([[1, 2], [3, 4], [5, 6]], np.float32).T + np.array([0.5, -1, 2], np.float32)
    for dt in (0.25, 0.75) * 2:  # the inner loop's rows, in each outer iteration
        y = np.float32(dt) * h
        h = y + h
    cvm = vm.accept(build(code=code), max_batch=2)
    assert cvm.use_plan(True)
    planned = cvm.run([x])[0]
    cvm.use_plan(False)
    np.testing.assert_array_equal(cvm.run([x])[0], planned)
    np.testing.assert_allclose(planned, y, rtol=1e-6)


# ---- code: shapes, regions, aliasing ------------------------------------------------------------------------


@pytest.mark.parametrize("code,pc", [
    ((E("PUSH", 0, X), E("PUSH", 0, BIAS), E("ADD", 0, H), E("DROP")), 2),          # [B,2] + [3]
    ((E("PUSH", 0, X), E("NEG", 0, H), E("DROP")), 1),                              # [B,2] -> [B,3]
    ((E("PUSH", 0, X), E("COPY", 0, G), E("DROP")), 1),                             # 2 -> 3 elements
    ((E("PUSH", 0, BIAS), E("COPY", 0, H), E("DROP")), 1),                          # unbatched -> batched
    ((E("PUSH", 0, X), E("PUSH", 0, X), E("CONCAT", 0, HH), E("DROP")), 2),         # along the batch axis
    ((E("PUSH", 0, BIAS), E("PUSH", 0, W), E("PUSH", 0, BIAS), E("LINEAR", 0, G), E("DROP")), 3),  # K 3 vs 2
])
def test_shape_rules(vm, code, pc):
    data = build(code=code)
    vm.expect(data, "E_SHAPE", code_at(data, pc))


def test_shape_rules_accept_the_matching_shapes(vm):
    vm.accept(build(code=(E("PUSH", 0, X), E("PUSH", 0, W), E("MATMUL_NT", 0, Z), E("PUSH", 0, BIAS),
                          E("ADD", 0, Z), E("DROP"))))  # [B,2] @ [3,2]^T = [B,3], + [3]


def test_batch_symbol_is_not_a_concrete_1(vm):
    tensors = (*TENSORS, TensorEntry((1, 3), ARENA, 0, batched=False))  # t10: [1,3] fixed
    data = build(tensors=tensors, code=(*LINEAR_H, E("COPY", 0, Y), E("NEG", 0, 10), E("DROP")))
    vm.expect(data, "E_SHAPE", code_at(data, 5))


def test_writes_into_constants_and_inputs_are_refused(vm):
    data = build(code=(E("ZERO", 0, DT), E("DROP")))
    vm.expect(data, "E_READONLY", code_at(data))
    data = build(code=(E("ZERO", 0, X), E("DROP")))
    vm.expect(data, "E_READONLY", code_at(data))


def test_linear_and_concat_may_not_write_over_an_operand(vm):
    tensors = (*TENSORS, TensorEntry((1, 2), ARENA, 0, batched=True))  # t10 x' [B,2] where h starts
    data = build(tensors=tensors, code=(E("PUSH", 0, X), E("COPY", 0, 10), E("PUSH", 0, W), E("PUSH", 0, BIAS),
                                        E("LINEAR", 0, H), E("DROP")))
    vm.expect(data, "E_ALIAS", code_at(data, 4))
    code = (*LINEAR_H, E("DROP"), *LINEAR_H[:3], E("LINEAR", 0, H2), E("DROP"),
            E("PUSH", 0, H), E("PUSH", 0, H2), E("CONCAT", 1, HH), E("DROP"))
    data = build(code=code)
    vm.expect(data, "E_ALIAS", code_at(data, 12))


def test_elementwise_ops_may_write_over_an_identical_range_only(vm):
    vm.accept(build(code=(*LINEAR_H, E("NEG", 0, H), E("DROP"))))  # in place
    tensors = (*TENSORS, TensorEntry((1, 3), ARENA, 4, batched=True))  # t10 overlaps h by 8 bytes
    data = build(tensors=tensors, code=(*LINEAR_H, E("NEG", 0, 10), E("DROP")))
    vm.expect(data, "E_ALIAS", code_at(data, 4))


# ---- code: no read before write -------------------------------------------------------------------------------


def test_reading_an_arena_tensor_never_written(vm):
    data = build(code=(E("PUSH", 0, H), E("NEG", 0, Y), E("DROP")))
    vm.expect(data, "E_UNINIT", code_at(data, 1))


def test_reading_an_output_before_writing_it(vm):
    data = build(code=(E("PUSH", 0, Y), E("NEG", 0, H), E("DROP")))
    vm.expect(data, "E_UNINIT", code_at(data, 1))
    vm.accept(build(code=(E("PUSH", 0, X), E("PUSH", 0, W), E("MATMUL_NT", 0, Y), E("NEG", 0, Y), E("DROP"))))


def test_a_range_partly_written_is_not_written(vm):
    """hh = h ++ h2: writing h alone leaves half of it unwritten; writing both covers it."""
    data = build(code=(*LINEAR_H, E("DROP"), E("PUSH", 0, HH), E("NEG", 0, HH), E("DROP")))
    vm.expect(data, "E_UNINIT", code_at(data, 6))
    code = (*LINEAR_H, E("DROP"), *LINEAR_H[:3], E("LINEAR", 0, H2), E("DROP"), E("PUSH", 0, HH),
            E("NEG", 0, HH), E("DROP"))
    vm.accept(build(code=code))


def test_a_loop_body_may_not_read_what_it_writes_later(vm):
    """First iteration: h is read before the LINEAR at the end of the body writes it."""
    code = (E("LOOP", 0, 3), E("PUSH", 0, H), E("NEG", 0, Y), E("DROP"), *LINEAR_H, E("DROP"), E("END"))
    data = build(code=code)
    vm.expect(data, "E_UNINIT", code_at(data, 2))


def test_zero_before_the_loop_then_in_place_updates_like_the_ltc(vm):
    """The compiler's LTC pattern: the state is ZEROed before the loop, then rewritten in place; a value
    written only inside a loop body is written after it (trip counts are >= 1)."""
    code = (E("ZERO", 0, H), E("DROP"),
            E("LOOP", 0, 2), E("PUSH", 0, H), E("PUSH", 0, DT), E("MUL", 0, Z), E("PUSH", 0, H), E("ADD", 0, H),
            E("DROP"), E("END"),
            E("PUSH", 0, Z), E("COPY", 0, Y), E("DROP"))
    vm.accept(build(code=code))


def test_batched_and_fixed_writes_do_not_cover_each_other(vm):
    """g (fixed+0) and h (row+0) share offset 0 but not memory."""
    data = build(code=(E("ZERO", 0, G), E("DROP"), E("PUSH", 0, H), E("NEG", 0, Y), E("DROP")))
    vm.expect(data, "E_UNINIT", code_at(data, 3))


def test_reshape_view_of_a_written_range_is_written(vm):
    tensors = (*TENSORS, TensorEntry((1, 1, 3), ARENA, 0, batched=True))  # t10: h as [B,1,3]
    vm.accept(build(tensors=tensors, code=(*LINEAR_H, E("DROP"), E("PUSH", 0, 10), E("COPY", 0, Y), E("DROP"))))


def test_uninitialised_read_is_reported_after_shape_and_alias_errors(vm):
    """A file broken twice reports the earlier class: h is unwritten, but the shape is wrong first."""
    data = build(code=(E("PUSH", 0, H), E("PUSH", 0, X), E("ADD", 0, Z), E("DROP")))
    vm.expect(data, "E_SHAPE", code_at(data, 2))


def _scattered(count: int) -> bytes:
    """count one-float fixed tensors 8 bytes apart, each ZEROed: count disjoint written ranges."""
    tensors = (*TENSORS, *(TensorEntry((1,), ARENA, 8 * i) for i in range(count)))
    code = tuple(w for i in range(count) for w in (E("ZERO", 0, len(TENSORS) + i), E("DROP")))
    return build(tensors=tensors, code=code, arena_fixed=8 * count)


def test_written_range_table_limit(vm):
    vm.accept(_scattered(MAX_WRITE_RANGES))
    data = _scattered(MAX_WRITE_RANGES + 1)
    vm.expect(data, "E_LIMIT", code_at(data, 2 * MAX_WRITE_RANGES))


def test_adjacent_writes_merge_into_one_range(vm):
    count = 4 * MAX_WRITE_RANGES
    tensors = (*TENSORS, *(TensorEntry((1,), ARENA, 4 * i) for i in range(count)))
    code = tuple(w for i in range(count) for w in (E("ZERO", 0, len(TENSORS) + i), E("DROP")))
    vm.accept(build(tensors=tensors, code=code, arena_fixed=4 * count))


# ---- element-wise programs (EWISEn) and split destinations (LINEAR_T / MATMUL_T) --------------------------------

U32 = isa.const("DT_U32")
OPC = {name: info.code for name, info in isa.opcodes().items()}


def ew_header(n: int, insns: int, regs: int, top: int = 0) -> int:
    return n | insns << 8 | regs << 16 | top << 24


def ew_insn(op: str | int, d: int = 0, a: int = 0, b: int = 0) -> int:
    return (OPC[op] if isinstance(op, str) else op) | d << 8 | a << 16 | b << 24


# y = -(x + x) as a 2-instruction program over 1 operand with 1 register
EW_OK = (ew_header(1, 2, 1), ew_insn("ADD", 0, 0, 0), ew_insn("NEG", 0, 1 + 0))


def ewise(words=EW_OK, n: int = 1, dims=None, dtype: int = U32, stride: int = 0, operand: int = X,
          dst: int = Y, region: int = CONST) -> bytes:
    """PUSH operand(s); PUSH p; EWISEn dst; DROP, with p the program `words` as tensor t10."""
    prog = TensorEntry(dims or (len(words),), region, len(CONSTS), stride=stride, dtype=dtype)
    consts = CONSTS + struct.pack(f"<{len(words)}I", *words) + bytes(64)
    code = (*(E("PUSH", 0, operand),) * n, E("PUSH", 0, 10), E(f"EWISE{n}", 0, dst), E("DROP"))
    return build(tensors=(*TENSORS, prog), consts=consts, code=code)


def test_element_wise_program_is_accepted_and_runs(vm):
    x = np.array([[1, -2], [0.5, 3]], np.float32)
    tensors = (*TENSORS, TensorEntry((3,), CONST, len(CONSTS), dtype=U32), TensorEntry((1, 2), OUTPUT, 0,
                                                                                      batched=True))
    # output 0 is t11 [B,2] here; t3 becomes an arena tensor so outputs stay numbered once
    tensors = list(tensors)
    tensors[Y] = TensorEntry((1, 3), ARENA, 32, batched=True)
    consts = CONSTS + struct.pack("<3I", *EW_OK)
    code = (E("PUSH", 0, X), E("PUSH", 0, 10), E("EWISE1", 0, 11), E("DROP"))
    out = vm.accept(build(tensors=tensors, consts=consts, code=code), max_batch=2).run([x])[0]
    np.testing.assert_array_equal(out, -(x + x))


def test_program_operand_must_be_u32_and_data_operands_f32(vm):
    data = ewise(dtype=1)  # the program as f32
    vm.expect(data, "E_DTYPE", code_at(data, 2))
    data = ewise(operand=10, n=1)  # the program also as the data operand
    vm.expect(data, "E_DTYPE", code_at(data, 2))
    tensors = (*TENSORS, TensorEntry((3,), CONST, len(CONSTS), dtype=U32))
    data = build(tensors=tensors, consts=CONSTS + bytes(12),
                 code=(E("PUSH", 0, X), E("PUSH", 0, 10), E("ADD", 0, H), E("DROP")))
    vm.expect(data, "E_DTYPE", code_at(data, 2))  # a u32 tensor into an f32 op


def test_u32_tensors_are_constants_only(vm):
    data = with_tensor(H, dtype=U32)
    vm.expect(data, "E_TENSOR", tensor_at(data, H, T_DTYPE))


@pytest.mark.parametrize("change", ["rank2", "strided", "short", "long"])
def test_program_tensor_shape(vm, change):
    if change == "rank2":
        data = ewise(dims=(1, 3))
    elif change == "strided":
        data = build(tensors=(*TENSORS, TensorEntry((3,), CONST, len(CONSTS), stride=12, dtype=U32)),
                     consts=CONSTS + struct.pack("<3I", *EW_OK) * 3,
                     code=(E("LOOP", 0, 2), E("PUSH", 0, X), E("PUSH", 0, 10), E("EWISE1", 0, Y), E("DROP"),
                           E("END")))
        vm.expect(data, "E_SHAPE", code_at(data, 3))
        return
    elif change == "short":
        data = ewise(words=(ew_header(1, 3, 1), *EW_OK[1:]))  # says 3 instructions, holds 2
    else:
        data = ewise(words=(*EW_OK, 0))  # one word more than 1 + L
    vm.expect(data, "E_SHAPE", code_at(data, 2))


@pytest.mark.parametrize("words", [
    (ew_header(2, 2, 1), *EW_OK[1:]),                                        # n says 2, EWISE1
    (ew_header(1, 0, 1),),                                                   # no instruction
    (ew_header(1, 33, 1), *[ew_insn("NEG", 0, 0)] * 33),                     # past LNN_EW_MAX_INSNS
    (ew_header(1, 2, 9), *EW_OK[1:]),                                        # past LNN_EW_MAX_REGS
    (ew_header(1, 2, 1, top=1), *EW_OK[1:]),                                 # reserved byte
    (ew_header(1, 2, 1), ew_insn("LINEAR", 0, 0, 0), EW_OK[2]),              # not an element-wise op
    (ew_header(1, 2, 1), ew_insn(0xEE, 0, 0, 0), EW_OK[2]),                  # not an opcode
    (ew_header(1, 2, 1), ew_insn("NEG", 0, 0, 1), EW_OK[2]),                 # unary op with a b
    (ew_header(1, 2, 2), ew_insn("ADD", 0, 0, 0), ew_insn("NEG", 0, 1 + 1)),  # register 1 never written
    (ew_header(1, 2, 1), ew_insn("ADD", 0, 0, 0), ew_insn("NEG", 0, 1 + 5)),  # register past R
    (ew_header(1, 2, 1), ew_insn("ADD", 1, 0, 0), EW_OK[2]),                 # d past R
    (ew_header(1, 2, 1), EW_OK[1], ew_insn("NEG", 1, 1)),                    # last d not 0
    (ew_header(1, 1, 0), ew_insn("ADD", 0, 0, 0xFF)),                        # operand -1 / 255
])
def test_program_words(vm, words):
    data = ewise(words=words)
    vm.expect(data, "E_OPERAND", code_at(data, 2))


def test_element_wise_operands_broadcast_to_the_destination(vm):
    data = ewise(operand=X, dst=H)  # [B,2] into [B,3]
    vm.expect(data, "E_SHAPE", code_at(data, 2))


def test_element_wise_operand_must_be_written(vm):
    data = ewise(operand=H, dst=Y)
    vm.expect(data, "E_UNINIT", code_at(data, 2))


# t10 Wt (2,3) = W as stored, t11 a [B,1] row+48, t12 b [B,2] row+52, t13 c [B,2] row+48 (overlaps a)
SPLIT_TENSORS = (*TENSORS, TensorEntry((2, 3), CONST, 0), TensorEntry((1, 1), ARENA, 48, batched=True),
                 TensorEntry((1, 2), ARENA, 52, batched=True), TensorEntry((1, 2), ARENA, 48, batched=True))
WT, SA, SB, SC = 10, 11, 12, 13


def split(a: int = 2, first: int = SA, op: str = "LINEAR_T", tensors=SPLIT_TENSORS, then=()) -> bytes:
    ops = (E("PUSH", 0, X), E("PUSH", 0, WT)) + ((E("PUSH", 0, BIAS),) if op == "LINEAR_T" else ())
    return build(tensors=tensors, arena_row=64, code=(*ops, E(op, a, first), E("DROP"), *then))


def test_split_destinations_are_accepted_and_written(vm):
    """Both destinations count as written: reading b (the second one) afterwards is fine."""
    read_b = (E("PUSH", 0, SB), E("PUSH", 0, SB), E("ADD", 0, SB), E("DROP"))
    vm.accept(split(then=read_b))
    vm.accept(split(op="MATMUL_T", then=read_b))


@pytest.mark.parametrize("a,first", [(0, SA), (isa.const("MAX_DSTS") + 1, SA), (2, 0xFFFF), (4, SA)])
def test_split_destination_count_and_range(vm, a, first):
    """A = 0, A > LNN_MAX_DSTS, B = 0xFFFF, B + A past the tensor table (11 + 4 > 14)."""
    data = split(a=a, first=first)
    vm.expect(data, "E_OPERAND", code_at(data, 3))


def test_split_columns_must_add_up_to_m(vm):
    data = split(a=1)  # one [B,1] destination for M = 3
    vm.expect(data, "E_SHAPE", code_at(data, 3))


def test_split_destinations_may_not_overlap_each_other_or_operands(vm):
    tensors = list(SPLIT_TENSORS)
    tensors[SB] = TensorEntry((1, 2), ARENA, 48, batched=True)  # b over a
    data = split(tensors=tensors)
    vm.expect(data, "E_ALIAS", code_at(data, 3))


def test_split_destination_must_be_writable(vm):
    tensors = list(SPLIT_TENSORS)
    tensors[SB] = TensorEntry((1, 2), CONST, 0)  # the second destination is a constant
    data = split(tensors=tensors)
    vm.expect(data, "E_READONLY", code_at(data, 3))


# ---- the work of a run, the arena (issue 15, defects 5 and 6) ------------------------------------------------


class Limits(ctypes.Structure):
    _fields_ = [("max_work", ctypes.c_uint64), ("max_arena", ctypes.c_uint64)]


def init_limits(library, data: bytes, max_work: int = 0, max_arena: int = 0) -> str:
    """lnn_init_limits with no arena: the status name (E_ARENA: everything else is valid)."""
    lib = load_library(str(library))
    lib.lnn_init_limits.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                    ctypes.c_size_t, ctypes.POINTER(Limits)]
    buf = ctypes.create_string_buffer(data, len(data))
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    status = lib.lnn_init_limits(ctypes.addressof(model), ctypes.addressof(buf), len(data), None, 0,
                                 ctypes.byref(Limits(max_work, max_arena)))
    return lib.lnn_status_name(status).decode()


# the base program's work per batch row: LINEAR 6 elements (W) + 1 row x 6 weights; twice MUL 3 and ADD 3; NEG 3
BASE_WORK = 6 + 6 + 2 * (3 + 3) + 3


def test_work_of_a_run_is_computed_and_bounded(vm, host_build, tmp_path):
    data = build()
    path = tmp_path / "base.lnnb"
    path.write_bytes(data)
    info = lnnvm(host_build.runner, "info", path)
    assert f"work: {BASE_WORK}\n" in info.stdout, info.stdout
    assert lnnvm(host_build.runner, "verify", path, "--max-work", str(BASE_WORK)).returncode == 0
    proc = lnnvm(host_build.runner, "--max-work", str(BASE_WORK - 1), "verify", path)
    assert proc.returncode == 3 and f": E_WORK at byte {code_at(data, 14)}:" in proc.stderr, proc.stderr  # NEG
    assert init_limits(vm.library, data, max_work=BASE_WORK) == "E_ARENA"
    assert init_limits(vm.library, data, max_work=BASE_WORK - 1) == "E_WORK"


def test_work_bomb_is_refused_by_default_and_accepted_only_with_its_budget(vm, host_build, tmp_path):
    """Issue 15, defect 5: the 372-byte file of 2^44 multiply-adds (tests/test_loader.py) is refused with the
    default limit, at its product; with a budget of 2^44 (and 2^32 + 2^25 + 2 for the rest) it verifies."""
    from test_loader import work_bomb

    data = work_bomb()
    assert len(data) < 400
    vm.expect(data, "E_WORK", code_at(data, 7))
    assert init_limits(vm.library, data, max_work=2 ** 44) == "E_WORK"
    assert init_limits(vm.library, data, max_work=2 ** 44 + 2 ** 32 + 2 ** 25 + 2) == "E_ARENA"


def test_compiled_model_work_is_far_below_the_default(host_build, sine_file):
    info = lnnvm(host_build.runner, "info", sine_file).stdout
    work = int(re.search(r"^work: (\d+)$", info, re.M).group(1))
    assert 0 < work < 2 ** 20


def test_arena_above_the_limit_is_refused_before_anything_is_allocated(host_build, tmp_path):
    """Issue 15, defect 6: a header declaring 4 GiB made `lnnvm verify` allocate (and zero) it. Now E_ARENA_LIMIT
    at the field, and the runner's peak memory stays small."""
    import subprocess
    import sys

    data = patched(build(), 24, "<I", 0xFFFFFFC0)
    path = tmp_path / "huge.lnnb"
    path.write_bytes(data)
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stderr)")
    out = subprocess.run([sys.executable, "-c", probe, str(host_build.runner), "verify", str(path)],
                         capture_output=True, text=True, timeout=120).stdout
    code, peak_kib = (int(v) for v in out.split("\n")[0].split())
    assert code == 3 and ": E_ARENA_LIMIT at byte 24:" in out, out
    assert peak_kib < 64 * 1024, out


def test_arena_limit_option_and_batch(vm, host_build, tmp_path):
    """--max-arena: one row's arena (lnn_arena_size(.., 1)) within it verifies; a --batch whose arena passes it
    is refused before the allocation. The header's parts: fixed at 24, row at 28."""
    data = build()
    path = tmp_path / "base.lnnb"
    path.write_bytes(data)
    one_row = 64 + 48  # align64(16) + 48
    assert lnnvm(host_build.runner, "verify", "--max-arena", str(one_row), path).returncode == 0
    proc = lnnvm(host_build.runner, "verify", "--max-arena", str(one_row - 1), path)
    assert proc.returncode == 3 and ": E_ARENA_LIMIT at byte 28:" in proc.stderr, proc.stderr
    assert init_limits(vm.library, data, max_arena=63) == "E_ARENA_LIMIT"
    x = tmp_path / "x.f32"
    np.zeros((4, 2), np.float32).tofile(x)
    run = ("run", path, "--in", x, "--out", tmp_path / "y.f32", "--batch", "4", "--max-arena")
    proc = lnnvm(host_build.runner, *run, str(64 + 4 * 48 - 1))
    assert proc.returncode == 2 and "E_ARENA_LIMIT: the arena for 4 rows is 256 bytes" in proc.stderr, proc.stderr
    assert lnnvm(host_build.runner, *run, str(64 + 4 * 48)).returncode == 0


# ---- non-finite values (issue 15, defect 8) -----------------------------------------------------------------

NAN, INF, NEG_INF = 0x7FC00000, 0x7F800000, 0xFF800000


def consts_at(data: bytes, offset: int = 0) -> int:
    return lnnb.section_offsets(data)[SEC_CONSTS][0] + offset


@pytest.mark.parametrize("bits", [NAN, INF, NEG_INF])
def test_non_finite_float32_constant_is_refused_at_its_byte(vm, bits):
    """Fails on 31302ac (accepted). W's value 5, b's value 1, and a constant no instruction reads."""
    for offset in (20, 36):
        data = patched(build(), consts_at(build(), offset), "<I", bits)
        vm.expect(data, "E_NONFINITE", consts_at(data, offset))
    unused = build(tensors=(*TENSORS, TensorEntry((2,), CONST, 48)))  # over dt's rows
    data = patched(unused, consts_at(unused, 52), "<I", bits)
    vm.expect(data, "E_NONFINITE", consts_at(data, 52))


def test_non_finite_row_of_a_strided_table_is_refused_where_a_loop_reads_it(vm):
    """dt's second row (read by LOOP 2); a third row past every loop's reach is not a value of the program."""
    data = patched(build(), consts_at(build(), 52), "<I", NAN)
    vm.expect(data, "E_NONFINITE", consts_at(data, 52))
    longer = build(consts=CONSTS + struct.pack("<I", NAN))
    vm.accept(longer)


def test_integer_constants_may_hold_any_bits(vm):
    """u32 (element-wise programs) and int8 (quantized weights) constants are not floats: NaN bit patterns in them
    are values."""
    u32, i8 = isa.const("DT_U32"), isa.const("DT_I8")
    tensors = (*TENSORS, TensorEntry((1,), CONST, 56, dtype=u32), TensorEntry((4,), CONST, 60, dtype=i8))
    vm.accept(build(tensors=tensors, consts=CONSTS + struct.pack("<II", NAN, INF)))


def with_tests(expected: float = 0.0, x: float = 1.0) -> bytes:
    cases = lnnb.TestSet(np.array([[x, 1]], np.float32), np.array([[expected, 0, 0]], np.float32), 1e-6)
    code = (E("ZERO", 0, H), E("DROP"), E("PUSH", 0, H), E("PUSH", 0, H), E("DIV", 0, Y), E("DROP"))  # y = 0 / 0
    return build(code=code, tests=cases)


def cases_at(data: bytes, offset: int) -> int:
    return lnnb.section_offsets(data)[isa.const("SEC_TESTS")][0] + offset


def test_non_finite_test_set_values_are_refused(vm):
    """Fails on 31302ac: a NaN expected value was accepted, and `lnnvm test` scored NaN against NaN as no error."""
    data = patched(with_tests(), cases_at(with_tests(), 20 + 8), "<I", NAN)  # expected y[0]
    vm.expect(data, "E_NONFINITE", cases_at(data, 28))
    data = patched(with_tests(), cases_at(with_tests(), 20), "<I", NEG_INF)  # input x[0]
    vm.expect(data, "E_NONFINITE", cases_at(data, 20))


def test_writer_and_reference_vm_refuse_non_finite_values():
    """lnnb.write refuses what the C VM refuses (a NaN in W, an infinite row of dt that LOOP 2 reads, a NaN expected
    value); the reference VM refuses a file that has one."""
    from lnnedge.refvm import RefVM, RefVMError

    nan_w = CONSTS[:20] + struct.pack("<I", NAN) + CONSTS[24:]
    inf_row = CONSTS[:52] + struct.pack("<I", INF)
    for consts in (nan_w, inf_row):
        with pytest.raises(lnnb.FormatError, match="NaN or infinite constant"):
            build(consts=consts)
    build(consts=CONSTS + struct.pack("<I", NAN))  # a third row of dt: no loop reads it
    with pytest.raises(lnnb.FormatError, match="test set"):
        build(tests=lnnb.TestSet(np.zeros((1, 2), np.float32), np.full((1, 3), np.nan, np.float32), 1e-6))
    with pytest.raises(RefVMError, match="NaN or infinite"):
        RefVM(patched(build(), consts_at(build(), 20), "<I", NAN))


def test_a_nan_output_never_passes_the_smoke_test(vm, host_build, tmp_path):
    path = tmp_path / "nan.lnnb"
    path.write_bytes(with_tests())
    proc = lnnvm(host_build.runner, "test", path)
    assert proc.returncode == 4 and "nan, expected 0" in proc.stdout and "FAILED" in proc.stdout, proc.stdout


# ---- float16 copies: the overlap check (issue 15, defect 7) ---------------------------------------------------

F16_COUNT = 65533  # with the input and the output: every tensor index but 0xFFFF


def many_halves(overlap: tuple[int, int] | None = None) -> bytes:
    """F16_COUNT one-value float16 constants, their float32 copies side by side in the fixed arena (copy i at
    4 * i); overlap (i, j): copy j placed on copy i."""
    f16 = isa.const("DT_F16")
    widened = [4 * i for i in range(F16_COUNT)]
    if overlap:
        widened[overlap[1]] = widened[overlap[0]]
    tensors = [TensorEntry((1, 2), INPUT, 0, batched=True), TensorEntry((1, 2), OUTPUT, 0, batched=True)]
    tensors += [TensorEntry((1,), CONST, 4 * i, dtype=f16, widened=w) for i, w in enumerate(widened)]
    consts = np.repeat(np.float16(0.5), 2 * F16_COUNT).tobytes()
    return lnnb.write(Program(tensors=tuple(tensors), consts=consts, code=(E("PUSH", 0, 0), E("COPY", 0, 1),
                                                                          E("DROP")),
                              arena_fixed=4 * F16_COUNT, arena_row=0, num_inputs=1, num_outputs=1))


@pytest.mark.parametrize("overlap", [None, (0, F16_COUNT - 1), (F16_COUNT - 1, 0), (40000, 40001)])
def test_many_float16_copies_are_checked(vm, overlap):
    """Accepted when the copies are disjoint; else E_TENSOR_BOUNDS at the widened field of the later copy (in the
    table) of the pair, through the runner (O(n log n) in its scratch) and the binding (lnn_init: in blocks)."""
    data = many_halves(overlap)
    if overlap is None:
        vm.accept(data)
    else:
        vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, 2 + max(overlap), 28))


def test_many_float16_copies_against_an_arena_tensor(vm):
    """An unbatched ARENA tensor over copies 50000 and 50001 (in place of constant 60000): the error at the first
    copy it overlaps."""
    program = lnnb.read(many_halves())
    tensors = list(program.tensors)
    tensors[2 + 60000] = TensorEntry((2,), ARENA, 4 * 50000)
    data = lnnb.write(replace(program, tensors=tuple(tensors)))
    vm.expect(data, "E_TENSOR_BOUNDS", tensor_at(data, 2 + 50000, 28))


# ---- end of the program, arena ------------------------------------------------------------------------------


def test_arena_sizes_never_wrap(host_build):
    """lnn_arena_size is align64(fixed) + row * batch in 64 bits (or 0 if it does not fit size_t)."""
    lib = load_library(str(host_build.library))
    data = patched(patched(build(), 24, "<I", 0xFFFFFFFF), 28, "<I", 0xFFFFFFFF)
    buf = ctypes.create_string_buffer(data, len(data))
    got = lib.lnn_arena_size(ctypes.addressof(buf), len(data), 0xFFFFFFFF)
    want = ((0xFFFFFFFF + 63) // 64 * 64 + 0xFFFFFFFF * 0xFFFFFFFF)
    assert got == (want if want < 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) else 0)
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    arena = ctypes.create_string_buffer(128)
    status = lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf), len(data), ctypes.addressof(arena), 64)
    assert lib.lnn_status_name(status).decode() == "E_ARENA_LIMIT"  # 4 GiB + 4 GiB per row: above the default
    assert init_limits(host_build.library, data, max_arena=2 ** 64 - 1) == "E_ARENA"  # valid; no arena given


# ---- the real models, determinism, verify time ---------------------------------------------------------------


def test_one_loader_and_verifier_for_every_build():
    """vm/Makefile (host, cross, sanitizer builds), the CMake build, the firmware and the fuzz harnesses all
    compile vm/src/loader.c and vm/src/verify.c (from vm/sources.mk); no other C file defines lnn_init or
    lnn_verify_code."""
    from lnnedge.paths import VM_DIR

    defining = sorted(str(p.relative_to(VM_DIR)) for p in VM_DIR.rglob("*.c")
                      if re.search(r"^lnn_status lnn_(init|verify_code)\s*\(", p.read_text(errors="replace"), re.M))
    assert defining == ["src/loader.c", "src/verify.c"]
    # one source list, vm/sources.mk, read by every build (tests/test_run_rows.py checks nothing else names them)
    assert re.search(r"^LNN_LIB_SRCS := loader\.c verify\.c ", (VM_DIR / "sources.mk").read_text(), re.M)
    assert "include sources.mk" in (VM_DIR / "Makefile").read_text()
    assert "sources.mk" in (VM_DIR / "CMakeLists.txt").read_text()
    fuzz_make = (VM_DIR / "fuzz" / "Makefile").read_text()
    assert "$(MAKE) --no-print-directory -C .. " in fuzz_make and "loader.c" not in fuzz_make
    assert "include $(VM)/sources.mk" in (VM_DIR / "firmware" / "Makefile").read_text()


def test_compiled_models_pass_every_check(vm, sine_compiled):
    vm.accept(sine_compiled.data, max_batch=4)


def worst_case_program(kind: str) -> bytes:
    """The slowest files to verify within the limits: MAX_CODE_WORDS words; the written-range table full
    (63 one-float ranges, then every operand in the 64th, the last one searched); every word of a unit
    that costs the verifier most per word:
      linear  LOOP 1; PUSH x, W, b; LINEAR; DROP; END under 12 stack entries (LOOP copies them, END
              compares them)
      ewise   8 operands and a 32-instruction program (8 registers) pushed, EWISE8, DROP
      split   PUSH x, Wt, bias; LINEAR_T into 8 destinations (each against the operands and the others)"""
    n = MAX_WRITE_RANGES
    u32 = isa.const("DT_U32")
    tensors = [*TENSORS]
    tensors += [TensorEntry((1, 1), ARENA, 8 * i, batched=True) for i in range(n - 1)]  # row 8*i, apart
    row = 8 * n  # from here on one contiguous written range
    xin = len(tensors)
    tensors.append(TensorEntry((1, 2), ARENA, row, batched=True))
    row += 8
    consts = bytearray(CONSTS)
    code = [w for i in range(n - 1) for w in (E("ZERO", 0, len(TENSORS) + i), E("DROP"))]
    code += [E("PUSH", 0, X), E("COPY", 0, xin), E("DROP")]
    if kind == "linear":
        yout = len(tensors)
        tensors.append(TensorEntry((1, 3), ARENA, row, batched=True))
        row += 12
        prologue, epilogue = [E("PUSH", 0, xin)] * 12, [E("DROP")] * 12
        unit = [E("LOOP", 0, 1), E("PUSH", 0, xin), E("PUSH", 0, W), E("PUSH", 0, BIAS), E("LINEAR", 0, yout),
                E("DROP"), E("END")]
    elif kind == "ewise":
        ops = len(tensors)
        for _ in range(9):  # 8 operands and the destination, all [B,2]
            tensors.append(TensorEntry((1, 2), ARENA, row, batched=True))
            row += 8
        prologue = []
        for i in range(8):
            prologue += [E("PUSH", 0, xin), E("COPY", 0, ops + i), E("DROP")]
        insns, regs = isa.const("EW_MAX_INSNS"), isa.const("EW_MAX_REGS")
        add = isa.opcodes()["ADD"].code
        words = [8 | insns << 8 | regs << 16]
        for i in range(insns - 1):  # register i % 8 = operand a + operand b
            words.append(add | (i % regs) << 8 | (i % 8) << 16 | ((i + 1) % 8) << 24)
        words.append(add | 0 << 8 | 0 << 16 | (8 + 0) << 24)  # destination = operand 0 + register 0
        prog = len(tensors)
        tensors.append(TensorEntry((len(words),), CONST, len(consts), dtype=u32))
        consts += struct.pack(f"<{len(words)}I", *words)
        epilogue = []
        unit = [*(E("PUSH", 0, ops + i) for i in range(8)), E("PUSH", 0, prog), E("EWISE8", 0, ops + 8), E("DROP")]
    else:  # split
        dsts = isa.const("MAX_DSTS")
        wt = len(tensors)
        tensors.append(TensorEntry((2, dsts), CONST, len(consts)))
        consts += np.arange(2 * dsts, dtype="<f4").tobytes()
        bias = len(tensors)
        tensors.append(TensorEntry((dsts,), CONST, len(consts)))
        consts += np.zeros(dsts, dtype="<f4").tobytes()
        first = len(tensors)
        for _ in range(dsts):  # one column each
            tensors.append(TensorEntry((1, 1), ARENA, row, batched=True))
            row += 4
        prologue, epilogue = [], []
        unit = [E("PUSH", 0, xin), E("PUSH", 0, wt), E("PUSH", 0, bias), E("LINEAR_T", dsts, first), E("DROP")]
    code += prologue
    while len(code) + len(unit) + len(epilogue) <= MAX_CODE_WORDS:
        code += unit
    code += epilogue
    return build(tensors=tensors, code=code, consts=bytes(consts), arena_row=row + 16)


@pytest.mark.parametrize("kind", ["linear", "ewise", "split"])
def test_worst_case_programs_fill_the_limits_and_are_accepted(vm, kind):
    """The files VERIFIER.md's verify-time figures are measured on: valid, and as long as the code may be.
    (Their time is a benchmark figure, not a test: speed is never asserted by a test.)"""
    data = worst_case_program(kind)
    code = lnnb.read(data).code
    assert MAX_CODE_WORDS - len(code) < 12, len(code)  # no further unit (11 words at most) would fit
    vm.accept(data)
