/* tests/unit/test_log.c: src/core/log.c helpers: quoting input in a message, and the
 * token bucket for messages a peer can trigger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/log.h"

static void test_printable_replaces_control_characters(void **state)
{
    char buf[32];

    (void)state;
    assert_string_equal(log_printable("web\r\nadmin\t\x7f\x1b[31m", buf, sizeof(buf)),
                        "web??admin???[31m");
    /* Bytes above 0x7f (UTF-8) are kept: they do not break a line. */
    assert_string_equal(log_printable("caf\xc3\xa9", buf, sizeof(buf)), "caf\xc3\xa9");
    assert_string_equal(log_printable("", buf, sizeof(buf)), "");
}

static void test_printable_truncates_to_the_buffer(void **state)
{
    char buf[5];

    (void)state;
    assert_ptr_equal(log_printable("abcdefgh", buf, sizeof(buf)), buf);
    assert_string_equal(buf, "abcd");
    assert_string_equal(log_printable("x", buf, 1), "");
}

static void test_ratelimit_allows_a_burst_then_refills(void **state)
{
    struct log_ratelimit rl;
    int allowed = 0;

    (void)state;
    memset(&rl, 0, sizeof(rl));
    for (int i = 0; i < 10; i++)
        allowed += log_ratelimit_allow(&rl, 1000, 3, 100);
    assert_int_equal(allowed, 3);
    assert_int_equal(rl.suppressed, 7);
    assert_false(log_ratelimit_allow(&rl, 1099, 3, 100)); /* not a whole interval yet */
    assert_true(log_ratelimit_allow(&rl, 1100, 3, 100));  /* one token back */
    assert_false(log_ratelimit_allow(&rl, 1150, 3, 100));
    /* A long quiet spell refills up to the burst, never past it. */
    allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += log_ratelimit_allow(&rl, 60000, 3, 100);
    assert_int_equal(allowed, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_replaces_control_characters),
        cmocka_unit_test(test_printable_truncates_to_the_buffer),
        cmocka_unit_test(test_ratelimit_allows_a_burst_then_refills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
