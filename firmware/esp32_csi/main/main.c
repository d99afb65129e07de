/* ESP-IDF glue (the only part that needs ESP-IDF; it is NOT compiled in this repository's CI,
 * which has no ESP-IDF or Xtensa toolchain): Wi-Fi station, CSI callback, router pings that
 * produce CSI at CONFIG_IV_CSI_RATE_HZ (as espressif/esp-csi's csi_recv_router does), and a
 * sender task. Everything else is the tested core: components/csi_core.
 *
 *   CSI callback (Wi-Fi task): CSIData <- wifi_csi_info_t, encode + HMAC, push to the ring
 *   sender task: pop, rate-limit, sendto() the ingest service (one Frame per UDP datagram)
 */
#include <string.h>

#include "csi_core.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "lwip/sockets.h"
#include "nvs_flash.h"
#include "ping/ping_sock.h"
#include "protocol_examples_common.h"

static const char *TAG = "iv_csi";
static csi_ring_t s_ring;
static portMUX_TYPE s_ring_lock = portMUX_INITIALIZER_UNLOCKED;
static uint32_t s_seq;
static char s_device_id[32];
static uint8_t s_bssid[6];

static void csi_cb(void *ctx, wifi_csi_info_t *info) {
    static iv_csi_v1_CSIData msg; /* callback context: static, no large stack frames */
    static uint8_t frame[CSI_FRAME_MAX];
    if (!info || !info->buf || memcmp(info->mac, s_bssid, 6) != 0) return; /* the router's frames only */
    memset(&msg, 0, sizeof msg);
    strncpy(msg.device_id, s_device_id, sizeof msg.device_id - 1);
    msg.seq = s_seq++;
    msg.timestamp_us = (uint64_t)esp_timer_get_time();
    msg.layout = iv_csi_v1_CsiLayout_HT20_LLTF_FFT;
    msg.csi.size = info->len > 128 ? 128 : info->len; /* L-LTF: 64 subcarriers x (imag, real) */
    memcpy(msg.csi.bytes, info->buf, msg.csi.size);
    msg.rssi = info->rx_ctrl.rssi;
    msg.noise_floor = info->rx_ctrl.noise_floor;
    msg.channel = info->rx_ctrl.channel;
    msg.rate_hz = CONFIG_IV_CSI_RATE_HZ;
    int n = csi_frame_encode(&msg, (const uint8_t *)CONFIG_IV_DEVICE_KEY, strlen(CONFIG_IV_DEVICE_KEY), frame,
                             sizeof frame);
    if (n <= 0) return;
    portENTER_CRITICAL(&s_ring_lock);
    csi_ring_push(&s_ring, frame, (size_t)n);
    portEXIT_CRITICAL(&s_ring_lock);
}

static void sender_task(void *arg) {
    static uint8_t frame[CSI_FRAME_MAX];
    csi_rate_t rate;
    csi_rate_init(&rate, CONFIG_IV_CSI_RATE_HZ, 10);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(CONFIG_IV_INGEST_PORT)};
    inet_pton(AF_INET, CONFIG_IV_INGEST_HOST, &to.sin_addr);
    int sock = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    for (;;) {
        portENTER_CRITICAL(&s_ring_lock);
        int n = csi_ring_pop(&s_ring, frame, sizeof frame);
        portEXIT_CRITICAL(&s_ring_lock);
        if (n <= 0) {
            vTaskDelay(pdMS_TO_TICKS(2));
            continue;
        }
        if (csi_rate_allow(&rate, (uint64_t)esp_timer_get_time()))
            sendto(sock, frame, (size_t)n, 0, (struct sockaddr *)&to, sizeof to);
    }
}

static void ping_router(void) {
    esp_ping_handle_t ping;
    esp_ping_config_t cfg = ESP_PING_DEFAULT_CONFIG();
    esp_netif_ip_info_t ip;
    cfg.count = 0; /* forever */
    cfg.interval_ms = 1000 / CONFIG_IV_CSI_RATE_HZ;
    cfg.data_size = 1;
    esp_netif_get_ip_info(esp_netif_get_handle_from_ifkey("WIFI_STA_DEF"), &ip);
    cfg.target_addr.u_addr.ip4.addr = ip4_addr_get_u32(&ip.gw);
    cfg.target_addr.type = ESP_IPADDR_TYPE_V4;
    esp_ping_callbacks_t cbs = {0};
    ESP_ERROR_CHECK(esp_ping_new_session(&cfg, &cbs, &ping));
    ESP_ERROR_CHECK(esp_ping_start(ping));
}

void app_main(void) {
    uint8_t mac[6];
    ESP_ERROR_CHECK(nvs_flash_init());
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    ESP_ERROR_CHECK(example_connect());
    esp_read_mac(mac, ESP_MAC_WIFI_STA);
    snprintf(s_device_id, sizeof s_device_id, "esp-%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
    if (strlen(CONFIG_IV_DEVICE_KEY) == 0) ESP_LOGW(TAG, "no device key set: the ingest service will refuse every frame");
    csi_ring_init(&s_ring);
    wifi_ap_record_t ap;
    ESP_ERROR_CHECK(esp_wifi_sta_get_ap_info(&ap));
    memcpy(s_bssid, ap.bssid, 6);
    wifi_csi_config_t csi = {
        .lltf_en = true, .htltf_en = false, .stbc_htltf2_en = false, .ltf_merge_en = true,
        .channel_filter_en = false, .manu_scale = false, .shift = 0,
    }; /* ESP32-C5/C6 use another wifi_csi_config_t (acquire_csi_*): adapt for those chips */
    ESP_ERROR_CHECK(esp_wifi_set_csi_config(&csi));
    ESP_ERROR_CHECK(esp_wifi_set_csi_rx_cb(csi_cb, NULL));
    ESP_ERROR_CHECK(esp_wifi_set_csi(true));
    xTaskCreate(sender_task, "iv_csi_send", 4096, NULL, 5, NULL);
    ping_router();
    ESP_LOGI(TAG, "%s streaming CSI to %s:%d at %d Hz", s_device_id, CONFIG_IV_INGEST_HOST, CONFIG_IV_INGEST_PORT,
             CONFIG_IV_CSI_RATE_HZ);
}
