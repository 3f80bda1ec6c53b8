import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc

from adapters.e_license.identifiers import PREFIX, InvalidIdentifier, build_identifier, check_char, parse_identifier

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
USCC_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"

type_codes = st.text(alphabet=ALNUM, min_size=21, max_size=21)
issuers = st.builds(lambda head, body: head + body + uscc.calc_check_digit(head + body),
                    st.text(alphabet="0123456789", min_size=8, max_size=8),
                    st.text(alphabet=USCC_BODY, min_size=9, max_size=9))
serials = st.text(alphabet=ALNUM, min_size=1, max_size=40)
versions = st.integers(min_value=0, max_value=999)

# A published-style example: the ID-card type code, a valid issuer USCC, the ID number as serial.
EXAMPLE = build_identifier("11100000000013127D001", "11450103000000001Y", "450103199005171239")


@given(type_codes, issuers, serials, versions)
def test_built_identifiers_validate_and_read_back(type_code, issuer, serial, version):
    parts = parse_identifier(build_identifier(type_code, issuer, serial, version))
    assert (parts.type_code, parts.issuer, parts.serial, parts.version) == (type_code, issuer, serial, f"{version:03d}")


@given(type_codes, issuers, serials, versions, st.data())
def test_any_single_character_change_is_refused(type_code, issuer, serial, version, data):
    identifier = build_identifier(type_code, issuer, serial, version)
    position = data.draw(st.integers(min_value=0, max_value=len(identifier) - 1))
    replacement = data.draw(st.characters(min_codepoint=32, max_codepoint=0x7E).filter(
        lambda c: c != identifier[position]))
    changed = identifier[:position] + replacement + identifier[position + 1:]
    with pytest.raises(InvalidIdentifier):
        parse_identifier(changed)


def test_example_reads_as_documented():
    assert EXAMPLE.startswith("1.2.156.3005.2.11100000000013127D001.11450103000000001Y.450103199005171239.001.")
    assert parse_identifier(EXAMPLE).serial == "450103199005171239"


@pytest.mark.parametrize("broken", [
    EXAMPLE.lower(),  # identifiers are compared byte for byte: no case folding
    EXAMPLE + ".",
    " " + EXAMPLE,
    EXAMPLE.replace(".001.", ".1."),
])
def test_malformed_structure_is_refused(broken):
    with pytest.raises(InvalidIdentifier):
        parse_identifier(broken)


def test_issuer_must_be_a_valid_uscc_even_with_a_matching_check_char():
    # 'I' is not in the USCC alphabet, so stdnum refuses the issuer although MOD 37,36 is satisfied.
    issuer = "11450103I0000000" + "1Y"
    identifier = f"{PREFIX}{'1' * 21}.{issuer}.1.001.{check_char('1' * 21, issuer, '1', '001')}"
    with pytest.raises(InvalidIdentifier, match="social credit"):
        parse_identifier(identifier)


@pytest.mark.parametrize(("type_code", "issuer", "serial", "version"), [
    ("1" * 20, "11450103000000001Y", "1", 1),
    ("1" * 21, "11450103000000001X", "1", 1),
    ("1" * 21, "11450103000000001Y", "a1", 1),
    ("1" * 21, "11450103000000001Y", "1", 1000),
])
def test_build_refuses_parts_that_cannot_be_read_back(type_code, issuer, serial, version):
    with pytest.raises(InvalidIdentifier):
        build_identifier(type_code, issuer, serial, version)
