/* See include/csi_core.h. */
#include "csi_core.h"

#include <string.h>

#include "pb_decode.h"
#include "pb_encode.h"

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

typedef struct {
    uint32_t h[8];
    uint8_t block[64];
    size_t fill;
    uint64_t total;
} sha256_ctx;

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64], a, b, d, e, f, g, h, cc, t1, t2;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d, c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, H0, sizeof H0);
    c->fill = 0;
    c->total = 0;
}

static void sha256_update(sha256_ctx *c, const uint8_t *p, size_t n) {
    c->total += n;
    while (n > 0) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, p, take);
        c->fill += take, p += take, n -= take;
        if (c->fill == 64) {
            sha256_block(c, c->block);
            c->fill = 0;
        }
    }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->total * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(c, &pad, 1);
    while (c->fill != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24), out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8), out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void csi_sha256(const uint8_t *msg, size_t len, uint8_t out[32]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, msg, len);
    sha256_final(&c, out);
}

void csi_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint8_t k[64] = {0}, pad[64], inner[32];
    sha256_ctx c;
    if (key_len > 64)
        csi_sha256(key, key_len, k);
    else if (key_len > 0)
        memcpy(k, key, key_len);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, msg, len);
    sha256_final(&c, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, inner, 32);
    sha256_final(&c, out);
}

/* ---------------------------------------------------------------- frames */
int csi_frame_encode(const iv_csi_v1_CSIData *msg, const uint8_t *key, size_t key_len, uint8_t *out,
                     size_t out_size) {
    iv_csi_v1_Frame frame;
    if (msg == NULL || out == NULL || (key == NULL && key_len > 0)) return CSI_ERR_ARG;
    memset(&frame, 0, sizeof frame);
    pb_ostream_t inner = pb_ostream_from_buffer(frame.data.bytes, sizeof frame.data.bytes);
    if (!pb_encode(&inner, iv_csi_v1_CSIData_fields, msg)) return CSI_ERR_ENCODE;
    frame.data.size = (pb_size_t)inner.bytes_written;
    csi_hmac_sha256(key, key_len, frame.data.bytes, frame.data.size, frame.hmac);
    pb_ostream_t os = pb_ostream_from_buffer(out, out_size);
    if (!pb_encode(&os, iv_csi_v1_Frame_fields, &frame)) return out_size < CSI_FRAME_MAX ? CSI_ERR_ARG : CSI_ERR_ENCODE;
    return (int)os.bytes_written;
}

static int equal_ct(const uint8_t *a, const uint8_t *b, size_t n) { /* constant time */
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

int csi_frame_decode(const uint8_t *buf, size_t len, const uint8_t *key, size_t key_len, iv_csi_v1_CSIData *msg) {
    iv_csi_v1_Frame frame;
    uint8_t mac[CSI_HMAC_LEN];
    if (buf == NULL || msg == NULL || (key == NULL && key_len > 0)) return CSI_ERR_ARG;
    memset(&frame, 0, sizeof frame);
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, iv_csi_v1_Frame_fields, &frame)) return CSI_ERR_DECODE;
    csi_hmac_sha256(key, key_len, frame.data.bytes, frame.data.size, mac);
    if (!equal_ct(mac, frame.hmac, CSI_HMAC_LEN)) return CSI_ERR_HMAC;
    memset(msg, 0, sizeof *msg);
    pb_istream_t inner = pb_istream_from_buffer(frame.data.bytes, frame.data.size);
    if (!pb_decode(&inner, iv_csi_v1_CSIData_fields, msg)) return CSI_ERR_DECODE;
    return CSI_OK;
}

/* ---------------------------------------------------------------- sequence, ring, rate */
int64_t csi_seq_delta(uint32_t prev, uint32_t cur) { return (int64_t)(int32_t)(cur - prev); }

void csi_ring_init(csi_ring_t *ring) { memset(ring, 0, sizeof *ring); }

bool csi_ring_push(csi_ring_t *ring, const uint8_t *frame, size_t len) {
    if (len == 0 || len > CSI_FRAME_MAX) return false;
    if (ring->count == CSI_RING_SLOTS) { /* full: the oldest goes */
        ring->count--;
        ring->dropped++;
    }
    memcpy(ring->data[ring->head], frame, len);
    ring->len[ring->head] = (uint16_t)len;
    ring->head = (ring->head + 1) % CSI_RING_SLOTS;
    ring->count++;
    return true;
}

int csi_ring_pop(csi_ring_t *ring, uint8_t *out, size_t cap) {
    if (ring->count == 0) return 0;
    uint32_t tail = (ring->head + CSI_RING_SLOTS - ring->count) % CSI_RING_SLOTS;
    if (ring->len[tail] > cap) return -1;
    memcpy(out, ring->data[tail], ring->len[tail]);
    ring->count--;
    return ring->len[tail];
}

void csi_rate_init(csi_rate_t *rate, uint32_t rate_hz, uint32_t burst) {
    memset(rate, 0, sizeof *rate);
    rate->rate_hz = rate_hz;
    rate->burst = burst ? burst : 1;
}

bool csi_rate_allow(csi_rate_t *rate, uint64_t now_us) {
    const uint64_t cap = (uint64_t)rate->burst * 1000000u;
    if (!rate->started) {
        rate->started = true;
        rate->tokens_ppm = cap;
        rate->last_us = now_us;
    }
    if (now_us > rate->last_us) { /* tokens accrue at rate_hz per second */
        uint64_t add = (now_us - rate->last_us) * rate->rate_hz;
        rate->tokens_ppm = rate->tokens_ppm + add > cap ? cap : rate->tokens_ppm + add;
        rate->last_us = now_us;
    }
    if (rate->tokens_ppm >= 1000000u) {
        rate->tokens_ppm -= 1000000u;
        return true;
    }
    return false;
}
