from gateway.settings import Settings
from gateway.store.connection import SentinelAddress, parse_sentinel_url, resolve_redis_url


def test_sentinels_replace_the_url_address_and_keep_its_password_and_database():
    settings = Settings(redis_url="redis://:s3cret@ignored:6379/8", redis_sentinels="10.0.0.1:26379, 10.0.0.2:26380",
                        redis_master_name="gw-primary")
    url, embedded = resolve_redis_url(settings)
    assert embedded is None
    assert parse_sentinel_url(url) == SentinelAddress([("10.0.0.1", 26379), ("10.0.0.2", 26380)], "gw-primary", 8,
                                                      "s3cret")


def test_without_a_master_name_the_plain_url_is_used():
    settings = Settings(redis_url="redis://127.0.0.1:6379/3", redis_sentinels="10.0.0.1:26379")
    assert resolve_redis_url(settings) == ("redis://127.0.0.1:6379/3", None)
    assert parse_sentinel_url("redis://127.0.0.1:6379/3") is None


def test_a_sentinel_url_without_password_or_database():
    assert parse_sentinel_url("redis+sentinel://127.0.0.1:26379/mymaster") == SentinelAddress(
        [("127.0.0.1", 26379)], "mymaster", 0, None)
