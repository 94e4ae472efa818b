/* tests/unit/test_evlog.c: event log lines (src/analytics/evlog.c) and the event
 * ring (src/core/event.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/evlog.h"

static struct event_rec sample(void)
{
    struct event_rec r;

    memset(&r, 0, sizeof(r));
    r.ts_ns = 1763800000123000000ull; /* 2025-11-22T08:26:40.123Z */
    r.connect_ns = 1763800000000000000ull;
    r.disconnect_ns = r.ts_ns;
    r.client_bytes = 1234;
    r.origin_bytes = 5678;
    r.client.family = 4;
    inet_pton(AF_INET, "192.0.2.7", r.client.ip);
    r.client.port = 51000;
    r.origin.family = 6;
    inet_pton(AF_INET6, "2001:db8::1", r.origin.ip);
    r.origin.port = 22;
    r.status = 444;
    r.kind = EVENT_DISCONNECT;
    r.proto = EVENT_TCP;
    r.pp = 2;
    snprintf(r.app_id, sizeof(r.app_id), "ssh-app");
    return r;
}

static void test_line_has_logpush_fields_and_types(void **state)
{
    struct event_rec r = sample();
    char buf[1024];
    size_t n = evlog_format(&r, "LAB", buf, sizeof(buf));
    json_error_t jerr;
    json_t *o;

    (void)state;
    assert_true(n > 0);
    assert_int_equal(buf[n - 1], '\n');
    buf[n] = '\0';
    o = json_loads(buf, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "Application")), "ssh-app");
    assert_string_equal(json_string_value(json_object_get(o, "ClientIP")), "192.0.2.7");
    assert_int_equal(json_integer_value(json_object_get(o, "ClientPort")), 51000);
    assert_string_equal(json_string_value(json_object_get(o, "ClientProto")), "tcp");
    assert_int_equal(json_integer_value(json_object_get(o, "ClientBytes")), 1234);
    assert_string_equal(json_string_value(json_object_get(o, "OriginIP")), "2001:db8::1");
    assert_int_equal(json_integer_value(json_object_get(o, "OriginPort")), 22);
    assert_int_equal(json_integer_value(json_object_get(o, "OriginBytes")), 5678);
    assert_string_equal(json_string_value(json_object_get(o, "ColoCode")), "LAB");
    assert_string_equal(json_string_value(json_object_get(o, "Event")), "disconnect");
    assert_string_equal(json_string_value(json_object_get(o, "ProxyProtocol")), "v2");
    assert_int_equal(json_integer_value(json_object_get(o, "Status")), 444);
    assert_string_equal(json_string_value(json_object_get(o, "Timestamp")),
                        "2025-11-22T08:26:40.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "ConnectTimestamp")),
                        "2025-11-22T08:26:40.000Z");
    assert_int_equal(json_object_size(o), 16);
    json_decref(o);
}

static void test_connect_record_has_null_disconnect(void **state)
{
    struct event_rec r = sample();
    char buf[1024];
    json_t *o;
    size_t n;

    (void)state;
    r.kind = EVENT_CONNECT;
    r.status = 0;
    r.disconnect_ns = 0;
    n = evlog_format(&r, "LAB", buf, sizeof(buf));
    buf[n] = '\0';
    o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "DisconnectTimestamp")));
    assert_string_equal(json_string_value(json_object_get(o, "Event")), "connect");
    assert_int_equal(json_integer_value(json_object_get(o, "Status")), 0);
    json_decref(o);
}

static void test_strings_are_escaped(void **state)
{
    struct event_rec r = sample();
    char buf[1024];
    json_t *o;
    size_t n;

    (void)state;
    snprintf(r.app_id, sizeof(r.app_id), "a\"b\\c\nd");
    n = evlog_format(&r, "L\"B", buf, sizeof(buf));
    buf[n] = '\0';
    o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "Application")), "a\"b\\c\nd");
    assert_string_equal(json_string_value(json_object_get(o, "ColoCode")), "L\"B");
    json_decref(o);
}

/* The whole line, byte for byte: field order, number and time formats, escapes. */
static void test_exact_bytes(void **state)
{
    struct event_rec r = sample();
    char buf[1024];
    size_t n;

    (void)state;
    r.ts_ns = 1763800000123456789ull;
    r.origin_bytes = UINT64_MAX;
    r.origin.port = 65535;
    snprintf(r.app_id, sizeof(r.app_id), "s\"h\x01");
    n = evlog_format(&r, "LAB", buf, sizeof(buf));
    assert_string_equal(
        buf,
        "{\"Application\":\"s\\\"h\\u0001\",\"ClientIP\":\"192.0.2.7\",\"ClientPort\":51000,"
        "\"ClientProto\":\"tcp\",\"ClientBytes\":1234,\"OriginIP\":\"2001:db8::1\","
        "\"OriginPort\":65535,\"OriginProto\":\"tcp\",\"OriginBytes\":18446744073709551615,"
        "\"ColoCode\":\"LAB\",\"ConnectTimestamp\":\"2025-11-22T08:26:40.000Z\","
        "\"DisconnectTimestamp\":\"2025-11-22T08:26:40.123Z\",\"Event\":\"disconnect\","
        "\"ProxyProtocol\":\"v2\",\"Status\":444,\"Timestamp\":\"2025-11-22T08:26:40.123Z\"}\n");
    assert_int_equal(n, strlen(buf));

    /* a connect record over UDP, one second later, no client address, no bytes */
    r.kind = EVENT_CONNECT;
    r.status = 0;
    r.disconnect_ns = 0;
    r.proto = EVENT_UDP;
    r.pp = 3;
    r.client.family = 0;
    r.client_bytes = 0;
    r.ts_ns = r.connect_ns = 1763800001007000000ull;
    n = evlog_format(&r, "L\\B", buf, sizeof(buf));
    assert_string_equal(
        buf,
        "{\"Application\":\"s\\\"h\\u0001\",\"ClientIP\":\"\",\"ClientPort\":51000,"
        "\"ClientProto\":\"udp\",\"ClientBytes\":0,\"OriginIP\":\"2001:db8::1\","
        "\"OriginPort\":65535,\"OriginProto\":\"udp\",\"OriginBytes\":18446744073709551615,"
        "\"ColoCode\":\"L\\\\B\",\"ConnectTimestamp\":\"2025-11-22T08:26:41.007Z\","
        "\"DisconnectTimestamp\":null,\"Event\":\"connect\","
        "\"ProxyProtocol\":\"simple\",\"Status\":0,\"Timestamp\":\"2025-11-22T08:26:41.007Z\"}\n");
    assert_int_equal(n, strlen(buf));
}

/* IPv4 is formatted by hand: every octet width, at every position, against inet_ntop. */
static void test_ipv4_text_matches_inet_ntop(void **state)
{
    static const uint8_t octets[] = {0, 1, 9, 10, 42, 99, 100, 127, 200, 255};
    struct event_rec r = sample();
    char buf[1024], want[INET_ADDRSTRLEN + 16], *at;

    (void)state;
    for (size_t i = 0; i < sizeof(octets); i++) {
        for (int pos = 0; pos < 4; pos++) {
            uint8_t ip[4] = {192, 0, 2, 7};
            ip[pos] = octets[i];
            memcpy(r.client.ip, ip, 4);
            assert_true(evlog_format(&r, "LAB", buf, sizeof(buf)) > 0);
            strcpy(want, "\"ClientIP\":\"");
            assert_non_null(inet_ntop(AF_INET, ip, want + strlen(want), INET_ADDRSTRLEN));
            strcat(want, "\",");
            at = strstr(buf, want);
            assert_non_null(at);
        }
    }
    memset(r.client.ip, 255, 4);
    assert_true(evlog_format(&r, "LAB", buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"ClientIP\":\"255.255.255.255\","));
}

static void test_short_buffer_returns_zero(void **state)
{
    struct event_rec r = sample();
    char buf[1024];
    size_t full = evlog_format(&r, "LAB", buf, sizeof(buf));

    (void)state;
    for (size_t len = 0; len <= full; len += 7)
        assert_int_equal(evlog_format(&r, "LAB", buf, len), 0);
    assert_int_equal(evlog_format(&r, "LAB", buf, full + 1), full);
}

static void test_ring_fifo_and_drop_count(void **state)
{
    struct event_ring *ring = calloc(1, sizeof(*ring));
    struct event_rec r = sample();

    (void)state;
    assert_null(event_ring_peek(ring));
    for (uint32_t i = 0; i < EVENT_RING_SIZE; i++) {
        r.status = (uint16_t)(i & 0x7fff);
        /* the push that makes it half full asks for a wake-up, and only that one */
        assert_int_equal(event_ring_push(ring, &r),
                         i + 1 == EVENT_RING_SIZE / 2 ? EVENT_HALF_FULL : EVENT_PUSHED);
    }
    assert_int_equal(event_ring_push(ring, &r), EVENT_DROPPED); /* full: dropped, counted */
    assert_int_equal(ring->dropped, 1);
    for (uint32_t i = 0; i < EVENT_RING_SIZE; i++) {
        const struct event_rec *p = event_ring_peek(ring);
        assert_non_null(p);
        assert_int_equal(p->status, i & 0x7fff);
        event_ring_pop(ring);
    }
    assert_null(event_ring_peek(ring));
    free(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_has_logpush_fields_and_types),
        cmocka_unit_test(test_connect_record_has_null_disconnect),
        cmocka_unit_test(test_strings_are_escaped),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_ipv4_text_matches_inet_ntop),
        cmocka_unit_test(test_short_buffer_returns_zero),
        cmocka_unit_test(test_ring_fifo_and_drop_count),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
