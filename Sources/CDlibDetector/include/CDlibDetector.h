// A thin C API over dlib's frontal face detector (HOG + linear SVM, built into dlib, no model file),
// so Swift can call it without C++ interop.
#ifndef CDLIB_DETECTOR_H
#define CDLIB_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One detection: the box in image pixels (left, top = its top-left corner) and the SVM score
/// (larger = more face-like; dlib reports detections scoring above 0).
typedef struct {
    float left, top, width, height;
    double score;
} fkp_face_box;

/// Finds faces in an 8-bit grey image (`width` x `height`, rows `stride` bytes apart). The image is
/// upsampled `upsample` times by 2 first (each step finds faces half as large: dlib's HOG window is
/// 80x80 pixels) and boxes are reported in the original image's pixels. Writes up to `capacity`
/// boxes, best score first, and returns how many faces were found (may exceed `capacity`),
/// or -1 on an error (message in `error`, `error_capacity` bytes, NUL-terminated).
/// Thread-safe: each thread uses its own detector.
int fkp_detect_faces(const uint8_t *pixels, int width, int height, int stride, int upsample,
                     fkp_face_box *boxes, int capacity, char *error, size_t error_capacity);

#ifdef __cplusplus
}
#endif

#endif
