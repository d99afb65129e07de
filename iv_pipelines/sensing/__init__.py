"""WiFi CSI sensing: ESP32 formats, the Shadow Twin simulator, features and models."""
