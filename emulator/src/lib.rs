//! Emulator of the Google Cloud REST APIs used by jit-groups-controller.
