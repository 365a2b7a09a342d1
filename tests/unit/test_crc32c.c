/* CRC-32C against the published test vectors of RFC 3720 §B.4 and the common check value,
 * for both the hardware and the table path, and incremental use. */
#include <check.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/prng.h"

Suite *test_crc32c_suite(void);

static uint32_t both_paths(const void *data, size_t len)
{
    uint32_t hw = k_crc32c(0, data, len);
    uint32_t sw = k_crc32c_sw(0, data, len);
    ck_assert_uint_eq(hw, sw);
    return hw;
}

START_TEST(test_crc32c_matches_rfc3720_vectors)
{
    unsigned char buf[32];
    memset(buf, 0, sizeof(buf));
    ck_assert_uint_eq(both_paths(buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    ck_assert_uint_eq(both_paths(buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    ck_assert_uint_eq(both_paths(buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    ck_assert_uint_eq(both_paths(buf, 32), 0x113FDB5Cu);
    /* An iSCSI SCSI Read (10) command PDU. */
    static const unsigned char pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    ck_assert_uint_eq(both_paths(pdu, sizeof(pdu)), 0xD9963A56u);
}
END_TEST

START_TEST(test_crc32c_check_value_of_123456789_is_e3069283)
{
    ck_assert_uint_eq(both_paths("123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(both_paths("", 0), 0u);
}
END_TEST

START_TEST(test_crc32c_incremental_equals_one_shot_at_every_split)
{
    unsigned char buf[300];
    struct k_prng prng;
    k_prng_init(&prng, 42);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)k_prng_next(&prng);
    uint32_t whole = both_paths(buf, sizeof(buf));
    for (size_t split = 0; split <= sizeof(buf); split++) {
        uint32_t a = k_crc32c(0, buf, split);
        ck_assert_uint_eq(k_crc32c(a, buf + split, sizeof(buf) - split), whole);
        uint32_t b = k_crc32c_sw(0, buf, split);
        ck_assert_uint_eq(k_crc32c_sw(b, buf + split, sizeof(buf) - split), whole);
    }
}
END_TEST

START_TEST(test_crc32c_detects_every_single_bit_flip)
{
    unsigned char buf[64];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    uint32_t good = k_crc32c(0, buf, sizeof(buf));
    for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        ck_assert_uint_ne(k_crc32c(0, buf, sizeof(buf)), good);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
}
END_TEST

Suite *test_crc32c_suite(void)
{
    Suite *s = suite_create("crc32c");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_crc32c_matches_rfc3720_vectors);
    tcase_add_test(tc, test_crc32c_check_value_of_123456789_is_e3069283);
    tcase_add_test(tc, test_crc32c_incremental_equals_one_shot_at_every_split);
    tcase_add_test(tc, test_crc32c_detects_every_single_bit_flip);
    suite_add_tcase(s, tc);
    return s;
}
