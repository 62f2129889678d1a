// dlib's shape predictor (Kazemi & Sullivan's ensemble of regression trees), trained and scored the
// way fkp scores its models, for Scripts/bench-vs-dlib:
//   bench_vs_dlib TRAIN.xml VALIDATION.xml [--cascade N] [--trees N] [--depth N] [--oversampling N]
//                 [--nu F] [--threads N] [--model OUT.dat] [--per-face OUT.csv]
// Both XML files are in the iBUG 300-W / dlib layout (fkp data export-split writes them). The shape
// predictor starts from the face box in the XML, the same box fkp's crop uses. Errors follow fkp's
// definition, not dlib's example (which normalises by eye centres): NME = mean point error / distance
// of the outer eye corners (points 36 and 45); failure: NME > 0.08; AUC@0.08 = mean over faces of
// max(0, 1 - NME / 0.08). Prints "key: value" lines.
#include <dlib/data_io.h>
#include <dlib/image_processing.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace dlib;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

[[noreturn]] void usage(const char *message) {
    std::cerr << "bench_vs_dlib: " << message << "\n"
              << "usage: bench_vs_dlib TRAIN.xml VALIDATION.xml [--cascade N] [--trees N] [--depth N] "
                 "[--oversampling N] [--nu F] [--threads N] [--model OUT.dat] [--per-face OUT.csv]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) usage("need TRAIN.xml and VALIDATION.xml");
    const std::string train_xml = argv[1], validation_xml = argv[2];
    shape_predictor_trainer trainer;   // dlib's defaults unless overridden
    std::string model_path, per_face_path;
    for (int i = 3; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
        const char *value = argv[i + 1];
        if (flag == "--cascade") trainer.set_cascade_depth(std::stoul(value));
        else if (flag == "--trees") trainer.set_num_trees_per_cascade_level(std::stoul(value));
        else if (flag == "--depth") trainer.set_tree_depth(std::stoul(value));
        else if (flag == "--oversampling") trainer.set_oversampling_amount(std::stoul(value));
        else if (flag == "--nu") trainer.set_nu(std::stod(value));
        else if (flag == "--threads") trainer.set_num_threads(std::stoul(value));
        else if (flag == "--model") model_path = value;
        else if (flag == "--per-face") per_face_path = value;
        else usage(("unknown option " + flag).c_str());
    }

    dlib::array<array2d<unsigned char>> train_images, validation_images;
    std::vector<std::vector<full_object_detection>> train_faces, validation_faces;
    try {
        load_image_dataset(train_images, train_faces, train_xml);
        load_image_dataset(validation_images, validation_faces, validation_xml);
    } catch (const std::exception &e) {
        std::cerr << "bench_vs_dlib: cannot load the datasets: " << e.what() << "\n";
        return 1;
    }

    std::printf("dlib settings: cascade %lu, trees %lu, depth %lu, oversampling %lu, nu %.3f, threads %lu\n",
                trainer.get_cascade_depth(), trainer.get_num_trees_per_cascade_level(), trainer.get_tree_depth(),
                trainer.get_oversampling_amount(), trainer.get_nu(), trainer.get_num_threads());
    auto start = std::chrono::steady_clock::now();
    shape_predictor predictor = trainer.train(train_images, train_faces);
    const double train_seconds = seconds_since(start);
    if (!model_path.empty()) serialize(model_path) << predictor;

    // Score every validation face, starting from its XML box.
    std::vector<double> nmes;
    std::ofstream per_face;
    if (!per_face_path.empty()) { per_face.open(per_face_path); per_face << "image,face,nme\n"; }
    start = std::chrono::steady_clock::now();
    std::vector<full_object_detection> predictions;
    for (size_t i = 0; i < validation_images.size(); ++i)
        for (const auto &truth : validation_faces[i]) predictions.push_back(predictor(validation_images[i], truth.get_rect()));
    const double predict_seconds = seconds_since(start);
    size_t k = 0;
    for (size_t i = 0; i < validation_images.size(); ++i) {
        for (size_t j = 0; j < validation_faces[i].size(); ++j, ++k) {
            const auto &truth = validation_faces[i][j];
            const auto &guess = predictions[k];
            if (truth.num_parts() != 68) { std::cerr << "bench_vs_dlib: face " << k << " has " << truth.num_parts() << " points, not 68\n"; return 1; }
            double sum = 0;
            for (unsigned long p = 0; p < truth.num_parts(); ++p) sum += length(guess.part(p) - truth.part(p));
            const double norm = length(truth.part(36) - truth.part(45));
            const double nme = sum / truth.num_parts() / std::max(norm, 1e-6);
            nmes.push_back(nme);
            if (per_face) per_face << i << "," << j << "," << nme << "\n";
        }
    }
    if (nmes.empty()) { std::cerr << "bench_vs_dlib: no validation faces\n"; return 1; }
    double nme = 0, failures = 0, auc = 0;
    const double threshold = 0.08;
    for (double e : nmes) {
        nme += e;
        failures += e > threshold ? 1 : 0;
        auc += e < threshold ? (threshold - e) / threshold : 0;
    }
    const double n = double(nmes.size());
    std::printf("train faces: %zu\n", [&] { size_t c = 0; for (auto &f : train_faces) c += f.size(); return c; }());
    std::printf("validation faces: %zu\n", nmes.size());
    std::printf("train seconds: %.1f\n", train_seconds);
    std::printf("predict ms per face: %.3f\n", 1000 * predict_seconds / n);
    std::printf("nme: %.5f\n", nme / n);
    std::printf("failure rate@0.08: %.4f\n", failures / n);
    std::printf("auc@0.08: %.4f\n", auc / n);
    return 0;
}
