import pytest

from modelmon.contract.reasons import INVALID_REASONS as REASONS
from modelmon.errors import ApiError
from modelmon.model.signature import Feature
from modelmon.monitoring.validation import RequestValidator


@pytest.fixture(scope="module")
def validator(stores_model):
    return RequestValidator("stores", stores_model.features, max_batch_rows=3)


def reason_of(call):
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def test_single_record_becomes_columns(validator):
    columns, batch = validator.parse_body(b'{"items_count": 1800, "customers_count": 950}')
    assert (columns, batch) == ({"items_count": [1800], "customers_count": [950]}, False)


def test_batch_becomes_columns(validator):
    body = b'{"instances": [{"items_count": 1, "customers_count": 2}, {"items_count": 3, "customers_count": 4}]}'
    assert validator.parse_body(body) == ({"items_count": [1, 3], "customers_count": [2, 4]}, True)


@pytest.mark.parametrize(
    "body, status, reason, field",
    [
        (b"", 400, "empty_body", None),
        (b"   ", 400, "empty_body", None),
        (b"items_count=3", 400, "invalid_json", "body"),
        (b"[1, 2]", 422, "wrong_type", "body"),
        (b'{"items_count": 1800}', 422, "missing_field", "customers_count"),
        (b'{"items_count": "1800", "customers_count": 1}', 422, "wrong_type", "items_count"),
        (b'{"items_count": 1800.5, "customers_count": 1}', 422, "wrong_type", "items_count"),
        (b'{"items_count": 1e30, "customers_count": 1}', 422, "out_of_bounds", "items_count"),
        (b'{"items_count": 99999999999999999999999, "customers_count": 1}', 422, "out_of_bounds", "items_count"),
        (b'{"items_count": true, "customers_count": 1}', 422, "wrong_type", "items_count"),
        (b'{"items_count": -1, "customers_count": 1}', 422, "out_of_bounds", "items_count"),
        (b'{"items_count": NaN, "customers_count": 1}', 422, "not_finite", "items_count"),
        (b'{"items_count": 1, "customers_count": Infinity}', 422, "not_finite", "customers_count"),
        (b'{"items_count": 1, "customers_count": 2, "store": "x"}', 422, "extra_field", "store"),
        (b'{"instances": []}', 422, "empty_batch", "instances"),
        (b'{"instances": {"items_count": 1}}', 422, "wrong_type", "instances"),
        (b'{"instances": [{"items_count": 1, "customers_count": 2}], "x": 1}', 422, "extra_field", "x"),
        (b'{"instances": [{"items_count": 1, "customers_count": 2}, {"items_count": 1}]}',
         422, "missing_field", "instances[1].customers_count"),
        (b'{"instances": [5]}', 422, "wrong_type", "instances[0]"),
        (b'{"instances": [' + b",".join([b'{"items_count": 1, "customers_count": 2}'] * 4) + b"]}",
         413, "batch_too_large", "instances"),
    ],
)
def test_bad_bodies_name_field_and_reason(validator, body, status, reason, field):
    error = reason_of(lambda: validator.parse_body(body))
    assert (error.status, error.reason, error.field) == (status, reason, field)
    assert reason in REASONS
    assert error.message.endswith(".")
    if field and field != "body":
        assert field.split(".")[-1].split("[")[0] in error.message


def test_whole_numbers_written_as_floats_are_integers(validator):
    columns, _ = validator.parse_body(b'{"items_count": 1800.0, "customers_count": 950}')
    assert columns == {"items_count": [1800], "customers_count": [950]}
    assert type(columns["items_count"][0]) is int


def test_every_error_of_a_record_is_listed(validator):
    error = reason_of(lambda: validator.parse_body(b'{"items_count": -1, "extra": 1}'))
    assert {(e["field"], e["reason"]) for e in error.errors} == {
        ("items_count", "out_of_bounds"), ("customers_count", "missing_field"), ("extra", "extra_field")
    }


def test_query_strings_are_converted(validator):
    assert validator.parse_query({"items_count": "1800", "customers_count": "950"}) == {
        "items_count": [1800], "customers_count": [950]
    }
    error = reason_of(lambda: validator.parse_query({"items_count": "x", "customers_count": "1"}))
    assert (error.reason, error.field) == ("wrong_type", "items_count")


def test_float_features_reject_non_finite_query_values(iris_model):
    validator = RequestValidator("iris", iris_model.features)
    params = {f.name: "1.5" for f in iris_model.features}
    assert validator.parse_query(params)["sepal_length_cm"] == [1.5]
    error = reason_of(lambda: validator.parse_query({**params, "sepal_length_cm": "nan"}))
    assert (error.reason, error.field) == ("not_finite", "sepal_length_cm")
    # JSON integers are fine for float features.
    body = b'{"sepal_length_cm": 5, "sepal_width_cm": 3.1, "petal_length_cm": 1.2, "petal_width_cm": 0.2}'
    assert validator.parse_body(body)[0]["sepal_length_cm"] == [5.0]


def test_an_integer_beyond_64_bits_is_refused_not_rounded_into_range():
    """The JSON parser reads -2**63 - 1 as the float -2**63; an int64 input takes the integers a
    double holds exactly (2**53 - 1), so neither it nor 2**53 is rounded into range."""
    validator = RequestValidator("houses", [Feature("rooms", "integer", "int64")])
    for body in (b'{"rooms": -9223372036854775809}', b'{"rooms": 9223372036854775808}', b'{"rooms": 9007199254740992}',
                 b'{"rooms": -9007199254740992}', b'{"rooms": 9007199254740993.0}'):
        with pytest.raises(ApiError) as refused:
            validator.parse_body(body)
        assert (refused.value.reason, refused.value.field) == ("out_of_bounds", "rooms")
    assert validator.parse_body(b'{"rooms": -9007199254740991}')[0] == {"rooms": [-(2**53 - 1)]}
    assert validator.parse_body(b'{"rooms": 9007199254740991}')[0] == {"rooms": [2**53 - 1]}
