"""The opcode and status tables are read from vm/include/*.def, the one source of truth."""

from lnnedge import isa


def test_opcode_table_is_parsed_with_unique_codes():
    ops = isa.opcodes()
    assert {"PUSH", "LOOP", "END", "LINEAR", "SIGMOID", "CONCAT"} <= set(ops)
    codes = [op.code for op in ops.values()]
    assert len(codes) == len(set(codes))
    assert all(0 < c < 256 for c in codes)


def test_instruction_word_round_trips():
    word = isa.encode("CONCAT", 1, 513)
    assert isa.decode(word) == (isa.opcodes()["CONCAT"].code, 1, 513)


def test_status_table_names_and_messages():
    statuses = isa.statuses()
    assert statuses[0][0] == "OK"
    names = [name for name, _ in statuses.values()]
    assert len(names) == len(set(names))
    assert "E_CRC" in names and "E_SHAPE" in names


def test_format_constants_come_from_the_c_header():
    assert isa.const("HEADER_SIZE") == 64
    assert isa.const("REG_OUTPUT") != isa.const("REG_INPUT")
