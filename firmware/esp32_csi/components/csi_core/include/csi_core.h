/* The firmware's hardware-independent core: frame encoding (nanopb CSIData inside a Frame
 * with an HMAC-SHA256 over the encoded CSIData), a ring buffer of encoded frames, sequence
 * arithmetic and a send-rate limiter. No ESP-IDF include, no malloc: it builds and is tested
 * on the host (gcc) and on RV32IMC under QEMU (firmware/test/), and ESP-IDF links it as the
 * `csi_core` component. */
#ifndef CSI_CORE_H
#define CSI_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csi_data.pb.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CSI_FRAME_MAX iv_csi_v1_Frame_size /* bytes of one encoded Frame, at most */
#define CSI_HMAC_LEN 32

enum csi_status {
    CSI_OK = 0,
    CSI_ERR_ARG = -1,      /* a NULL pointer, an oversized field or a too small buffer */
    CSI_ERR_ENCODE = -2,   /* nanopb could not encode */
    CSI_ERR_DECODE = -3,   /* not a Frame / CSIData, or truncated */
    CSI_ERR_HMAC = -4,     /* the HMAC does not match the device key */
};

/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), portable, constant memory. */
void csi_sha256(const uint8_t *msg, size_t len, uint8_t out[32]);
void csi_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len, uint8_t out[32]);

/* Encode `msg` into a Frame (data = the encoded CSIData, hmac over it with `key`).
 * Returns the number of bytes written to `out`, or a negative csi_status. */
int csi_frame_encode(const iv_csi_v1_CSIData *msg, const uint8_t *key, size_t key_len, uint8_t *out,
                     size_t out_size);

/* Decode a Frame and verify its HMAC with `key`; on CSI_OK `msg` holds the CSIData. */
int csi_frame_decode(const uint8_t *buf, size_t len, const uint8_t *key, size_t key_len, iv_csi_v1_CSIData *msg);

/* Sequence numbers wrap at 2^32: the signed distance from `prev` to `cur` (1 = the next frame,
 * 0 = a duplicate, > 1 = frames missing, < 0 = late or replayed). */
int64_t csi_seq_delta(uint32_t prev, uint32_t cur);

/* A ring of encoded frames: the producer (the CSI callback) never blocks; when full, the
 * oldest frame is dropped and counted (fresh CSI matters more than old CSI). */
#ifndef CSI_RING_SLOTS
#define CSI_RING_SLOTS 16
#endif
typedef struct {
    uint8_t data[CSI_RING_SLOTS][CSI_FRAME_MAX];
    uint16_t len[CSI_RING_SLOTS];
    uint32_t head;    /* next slot to write */
    uint32_t count;   /* frames held */
    uint32_t dropped; /* frames overwritten before they were sent */
} csi_ring_t;

void csi_ring_init(csi_ring_t *ring);
/* Returns false when the frame is too long for a slot (nothing stored). */
bool csi_ring_push(csi_ring_t *ring, const uint8_t *frame, size_t len);
/* The oldest frame into `out`; returns its length, 0 when empty, -1 when `cap` is too small. */
int csi_ring_pop(csi_ring_t *ring, uint8_t *out, size_t cap);

/* Token bucket: at most `rate_hz` frames a second on average, bursts up to `burst`. */
typedef struct {
    uint32_t rate_hz;
    uint32_t burst;
    uint64_t last_us;
    uint64_t tokens_ppm; /* tokens x 1e6 */
    bool started;
} csi_rate_t;

void csi_rate_init(csi_rate_t *rate, uint32_t rate_hz, uint32_t burst);
bool csi_rate_allow(csi_rate_t *rate, uint64_t now_us);

#ifdef __cplusplus
}
#endif
#endif /* CSI_CORE_H */
