// dlib's frontal face detector behind the C API of CDlibDetector.h.
#include "CDlibDetector.h"

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

// The detector holds scratch buffers and is not thread-safe; building one takes about a
// millisecond (the model is compiled in), so each thread keeps its own.
dlib::frontal_face_detector &detector() {
    thread_local dlib::frontal_face_detector instance = dlib::get_frontal_face_detector();
    return instance;
}

void set_error(char *error, size_t capacity, const char *message) {
    if (error && capacity > 0) std::snprintf(error, capacity, "%s", message);
}

}  // namespace

extern "C" int fkp_detect_faces(const uint8_t *pixels, int width, int height, int stride, int upsample,
                                fkp_face_box *boxes, int capacity, char *error, size_t error_capacity) {
    if (!pixels || width <= 0 || height <= 0 || stride < width || upsample < 0 || capacity < 0
        || (capacity > 0 && !boxes)) {
        set_error(error, error_capacity, "invalid arguments");
        return -1;
    }
    // Each upsampling step quadruples the pixels: refuse what cannot fit comfortably in memory.
    const double pixelsAfter = double(width) * height * double(1ull << (2 * std::min(upsample, 8)));
    if (upsample > 4 || pixelsAfter > 2.5e8) {
        set_error(error, error_capacity, "image too large for this upsampling (more than 250 Mpixel after upsampling)");
        return -1;
    }
    try {
        dlib::array2d<unsigned char> image(height, width);
        for (int y = 0; y < height; ++y) std::copy(pixels + size_t(y) * stride, pixels + size_t(y) * stride + width, &image[y][0]);
        for (int i = 0; i < upsample; ++i) dlib::pyramid_up(image);
        std::vector<dlib::rect_detection> found;
        detector()(image, found, 0.0);
        std::sort(found.begin(), found.end(), [](const dlib::rect_detection &a, const dlib::rect_detection &b) {
            return a.detection_confidence > b.detection_confidence;
        });
        const dlib::pyramid_down<2> pyramid;   // the mapping pyramid_up inverts
        const int n = int(found.size());
        for (int i = 0; i < std::min(n, capacity); ++i) {
            dlib::drectangle r(found[i].rect);
            for (int k = 0; k < upsample; ++k) r = pyramid.rect_down(r);
            // dlib rectangles are inclusive pixel ranges: width() = right - left + 1.
            boxes[i] = fkp_face_box{float(r.left()), float(r.top()), float(r.width()), float(r.height()),
                                    found[i].detection_confidence};
        }
        return n;
    } catch (const std::exception &e) {
        set_error(error, error_capacity, e.what());
        return -1;
    }
}
