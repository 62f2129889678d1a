import Engine
import Foundation
import XCTest

/// PyTorch reference values written by Scripts/make_layer_fixtures.py (Fixtures/<family>.json).
/// Tensors are in PyTorch's layouts: NCHW images (convert with `cnhw`), state_dict parameters.
struct FixtureCase {
    let name: String
    let config: [String: Any]
    let tensors: [String: (shape: [Int], data: [Float])]

    func array(_ key: String) -> [Float] {
        guard let t = tensors[key] else { fatalError("fixture \(name): no tensor \(key)") }
        return t.data
    }

    func shape(_ key: String) -> [Int] {
        guard let t = tensors[key] else { fatalError("fixture \(name): no tensor \(key)") }
        return t.shape
    }

    /// A 4-D tensor in the engine's CNHW layout, or a row-major one for other ranks.
    func tensor(_ key: String) -> Tensor {
        let s = shape(key)
        return s.count == 4 ? Layout.cnhwTensor(shape: s, nchw: array(key)) : Tensor(shape: s, values: array(key))
    }

    func int(_ key: String) -> Int { (config[key] as! NSNumber).intValue }
    func float(_ key: String) -> Float { (config[key] as! NSNumber).floatValue }
    func bool(_ key: String) -> Bool { (config[key] as! NSNumber).boolValue }
    func string(_ key: String) -> String { config[key] as! String }
}

enum Fixtures {
    /// The cases of Fixtures/<family>.json. A missing, unreadable or empty file fails the calling
    /// test (a loop over no cases would pass without checking anything).
    static func load(_ family: String, file: StaticString = #filePath, line: UInt = #line) -> [FixtureCase] {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(family)", withExtension: "json")
                ?? Bundle.module.url(forResource: family, withExtension: "json", subdirectory: "Fixtures"),
              let data = try? Data(contentsOf: url),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cases = root["cases"] as? [[String: Any]]
        else {
            XCTFail("missing or unreadable fixture Fixtures/\(family).json (run Scripts/make_layer_fixtures.py)", file: file, line: line)
            return []
        }
        guard !cases.isEmpty else {
            XCTFail("fixture Fixtures/\(family).json has no cases (run Scripts/make_layer_fixtures.py)", file: file, line: line)
            return []
        }
        return cases.map { c in
            var tensors: [String: (shape: [Int], data: [Float])] = [:]
            for (key, value) in c["tensors"] as! [String: [String: Any]] {
                let shape = (value["shape"] as! [NSNumber]).map(\.intValue)
                let data = (value["data"] as! [NSNumber]).map(\.floatValue)
                tensors[key] = (shape, data)
            }
            return FixtureCase(name: c["name"] as! String, config: c["config"] as? [String: Any] ?? [:], tensors: tensors)
        }
    }

    /// Asserts max|got − expected| ≤ tolerance · max(1, max|expected|) and prints the difference
    /// (the test log then lists every comparison against PyTorch). Returns the max difference.
    @discardableResult
    static func assertClose(_ got: [Float], _ expected: [Float], _ label: String, tolerance: Float = 1e-4,
                            file: StaticString = #filePath, line: UInt = #line) -> Float {
        XCTAssertEqual(got.count, expected.count, "\(label): element count", file: file, line: line)
        guard got.count == expected.count else { return .infinity }
        let scale = max(1, expected.map(abs).max() ?? 0)
        let diff = zip(got, expected).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        print("PyTorch reference \(label): max |diff| \(diff) (scale \(scale))")
        XCTAssertLessThanOrEqual(diff, tolerance * scale, "\(label): max |diff| \(diff)", file: file, line: line)
        return diff
    }
}
