/* Tests of the hardware-independent core, one source for both targets: the host (gcc) and
 * RV32IMC under qemu-system-riscv32 -machine virt with semihosting (picolibc). A minimal
 * harness (no cmocka: it has no RISC-V build) — every CHECK prints its line on failure.
 *
 *   test_core                 run the tests (exit status = failures)
 *   test_core --vector        print one deterministic encoded Frame as hex (Python decodes it)
 *   test_core --decode HEX    decode a Frame made by Python and print its fields
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi_core.h"

static int failures, checks;
#define CHECK(cond)                                                      \
    do {                                                                 \
        checks++;                                                        \
        if (!(cond)) {                                                   \
            failures++;                                                  \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                \
    } while (0)

static const uint8_t KEY[] = "device-key-0123456789abcdef";
#define KEY_LEN (sizeof KEY - 1)

static void hex(const uint8_t *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void sample(iv_csi_v1_CSIData *m, uint32_t seq) {
    memset(m, 0, sizeof *m);
    strcpy(m->device_id, "esp32c3-a1b2c3");
    m->seq = seq;
    m->timestamp_us = 1234567890123ull;
    m->layout = iv_csi_v1_CsiLayout_HT20_LLTF_FFT;
    m->csi.size = 128;
    for (int i = 0; i < 128; i++) m->csi.bytes[i] = (uint8_t)(int8_t)((i * 7) % 256 - 128);
    m->rssi = -57;
    m->noise_floor = -92;
    m->channel = 6;
    m->rate_hz = 100;
    m->has_event = true;
    m->event.type = iv_csi_v1_SensingEvent_Type_FALL;
    m->event.confidence = 0.875f;
}

static void test_sha256_and_hmac(void) {
    uint8_t d[32];
    char h[65];
    csi_sha256((const uint8_t *)"abc", 3, d);
    hex(d, 32, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    csi_hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)"what do ya want for nothing?", 28, d);
    hex(d, 32, h); /* RFC 4231 test case 2 */
    CHECK(strcmp(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0);
    uint8_t big[131];
    memset(big, 0xaa, sizeof big);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    csi_hmac_sha256(big, sizeof big, (const uint8_t *)m6, strlen(m6), d);
    hex(d, 32, h); /* RFC 4231 test case 6: a key longer than a block is hashed first */
    CHECK(strcmp(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54") == 0);
}

static void test_frame_round_trip_and_refusals(void) {
    iv_csi_v1_CSIData m, back;
    uint8_t buf[CSI_FRAME_MAX];
    sample(&m, 41);
    int n = csi_frame_encode(&m, KEY, KEY_LEN, buf, sizeof buf);
    CHECK(n > 128 && n <= CSI_FRAME_MAX);
    CHECK(csi_frame_decode(buf, (size_t)n, KEY, KEY_LEN, &back) == CSI_OK);
    CHECK(strcmp(back.device_id, m.device_id) == 0 && back.seq == 41 && back.timestamp_us == m.timestamp_us);
    CHECK(back.csi.size == 128 && memcmp(back.csi.bytes, m.csi.bytes, 128) == 0);
    CHECK(back.rssi == -57 && back.noise_floor == -92 && back.channel == 6 && back.rate_hz == 100);
    CHECK(back.has_event && back.event.type == iv_csi_v1_SensingEvent_Type_FALL && back.event.confidence == 0.875f);
    /* another key, a flipped byte, a truncated or a garbage buffer: refused, never trusted */
    CHECK(csi_frame_decode(buf, (size_t)n, (const uint8_t *)"stranger", 8, &back) == CSI_ERR_HMAC);
    buf[20] ^= 0x01;
    CHECK(csi_frame_decode(buf, (size_t)n, KEY, KEY_LEN, &back) == CSI_ERR_HMAC);
    buf[20] ^= 0x01;
    CHECK(csi_frame_decode(buf, (size_t)n - 10, KEY, KEY_LEN, &back) == CSI_ERR_DECODE);
    uint8_t junk[64];
    for (int i = 0; i < 64; i++) junk[i] = (uint8_t)(i * 37 + 11);
    CHECK(csi_frame_decode(junk, sizeof junk, KEY, KEY_LEN, &back) != CSI_OK);
    /* a field over its limit, and an output buffer too small */
    m.csi.size = 385;
    CHECK(csi_frame_encode(&m, KEY, KEY_LEN, buf, sizeof buf) < 0);
    m.csi.size = 128;
    CHECK(csi_frame_encode(&m, KEY, KEY_LEN, buf, 40) == CSI_ERR_ARG);
    CHECK(csi_frame_encode(NULL, KEY, KEY_LEN, buf, sizeof buf) == CSI_ERR_ARG);
}

static void test_sequence_wrap(void) {
    CHECK(csi_seq_delta(5, 6) == 1);
    CHECK(csi_seq_delta(5, 5) == 0);
    CHECK(csi_seq_delta(0xFFFFFFFFu, 0) == 1);
    CHECK(csi_seq_delta(0xFFFFFFFEu, 3) == 5);
    CHECK(csi_seq_delta(10, 7) == -3);
    CHECK(csi_seq_delta(2, 0xFFFFFFFFu) == -3);
}

static csi_ring_t ring; /* ~9 KB: static, as on the device */

static void test_ring_overflow_keeps_the_newest(void) {
    uint8_t f[8], out[CSI_FRAME_MAX];
    csi_ring_init(&ring);
    CHECK(csi_ring_pop(&ring, out, sizeof out) == 0);
    for (uint32_t i = 1; i <= CSI_RING_SLOTS + 4; i++) {
        memset(f, (int)i, sizeof f);
        CHECK(csi_ring_push(&ring, f, sizeof f));
    }
    CHECK(ring.count == CSI_RING_SLOTS && ring.dropped == 4);
    CHECK(csi_ring_pop(&ring, out, 4) == -1); /* too small: nothing lost */
    for (uint32_t i = 5; i <= CSI_RING_SLOTS + 4; i++) {
        CHECK(csi_ring_pop(&ring, out, sizeof out) == 8 && out[0] == (uint8_t)i);
    }
    CHECK(csi_ring_pop(&ring, out, sizeof out) == 0);
    CHECK(!csi_ring_push(&ring, f, 0) && !csi_ring_push(&ring, out, CSI_FRAME_MAX + 1));
    for (uint32_t round = 0; round < 3 * CSI_RING_SLOTS; round++) { /* wrap many times */
        memset(f, (int)(round & 0xff), sizeof f);
        csi_ring_push(&ring, f, sizeof f);
        CHECK(csi_ring_pop(&ring, out, sizeof out) == 8 && out[7] == (uint8_t)round);
    }
}

static void test_rate_limit(void) {
    csi_rate_t r;
    csi_rate_init(&r, 100, 1);
    CHECK(csi_rate_allow(&r, 0));
    CHECK(!csi_rate_allow(&r, 1000));
    CHECK(csi_rate_allow(&r, 10000));
    int allowed = 0;
    csi_rate_init(&r, 100, 5);
    for (uint64_t t = 0; t < 1000000; t += 1000) allowed += csi_rate_allow(&r, t); /* 1 kHz for 1 s */
    CHECK(allowed >= 100 && allowed <= 105);
}

static int vector(void) {
    iv_csi_v1_CSIData m;
    uint8_t buf[CSI_FRAME_MAX];
    char h[2 * CSI_FRAME_MAX + 1];
    sample(&m, 41);
    int n = csi_frame_encode(&m, KEY, KEY_LEN, buf, sizeof buf);
    if (n < 0) return 1;
    hex(buf, (size_t)n, h);
    printf("%s\n", h);
    return 0;
}

static int decode(const char *h) {
    static uint8_t buf[4096];
    iv_csi_v1_CSIData m;
    size_t n = strlen(h) / 2;
    if (n > sizeof buf) return 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return 2;
        buf[i] = (uint8_t)v;
    }
    int rc = csi_frame_decode(buf, n, KEY, KEY_LEN, &m);
    if (rc != CSI_OK) {
        printf("error %d\n", rc);
        return 1;
    }
    long sum = 0;
    for (pb_size_t i = 0; i < m.csi.size; i++) sum += (int8_t)m.csi.bytes[i];
    printf("device_id=%s seq=%lu timestamp_us=%llu layout=%d csi_len=%u csi_sum=%ld rssi=%ld channel=%lu\n",
           m.device_id, (unsigned long)m.seq, (unsigned long long)m.timestamp_us, (int)m.layout,
           (unsigned)m.csi.size, sum, (long)m.rssi, (unsigned long)m.channel);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--vector") == 0) return vector();
    if (argc > 2 && strcmp(argv[1], "--decode") == 0) return decode(argv[2]);
    test_sha256_and_hmac();
    test_frame_round_trip_and_refusals();
    test_sequence_wrap();
    test_ring_overflow_keeps_the_newest();
    test_rate_limit();
    printf("csi_core: %d checks, %d failures\n", checks, failures);
    return failures;
}
