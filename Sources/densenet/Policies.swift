import ArgumentParser
import CommandLineOptions
import DenseNetModels
import Foundation

/// `densenet policies`: the memory policies as data (Sources/DenseNetModels/MemoryPolicy.swift),
/// for people and for scripts (Scripts/ablation_ladder.py reads its rungs from here).
struct Policies: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policies",
        abstract: "List the memory strategies: presets, the saving each field switches on, and the ablation ladder.",
        discussion: """
        A strategy (--strategy, --strategies) is a preset or presets and fields joined by '+', \
        e.g. shared+recompute-bottleneck. Each model family honours its part of a strategy \
        (a ResNet has no concatenation to share); every strategy computes the same function.
        """)

    @OptionGroup var output: JSONOutputOptions

    struct Listing: Encodable {
        struct Field: Encodable { var name: String; var saves: String }
        struct Preset: Encodable {
            var name: String
            var fields: [String]
            var honoured: [String: [String]]
        }
        struct Rung: Encodable { var strategy: String; var adds: String }
        var fields: [Field]
        var presets: [Preset]
        var ladder: [Rung]
    }

    func run() throws {
        func fields(_ p: MemoryPolicy) -> [String] { MemoryPolicy.fields.filter { p[keyPath: $0.keyPath] }.map(\.name) }
        let listing = Listing(
            fields: MemoryPolicy.fields.map { .init(name: $0.name, saves: $0.saves) },
            presets: MemoryPolicy.presets.map { preset in
                .init(name: preset.name, fields: fields(preset.policy),
                      honoured: Dictionary(uniqueKeysWithValues: ModelFamily.allCases.map {
                          ($0.rawValue, fields(preset.policy.honoured(by: $0)))
                      }))
            },
            ladder: MemoryPolicy.ladder.map { .init(strategy: $0.policy.name, adds: $0.adds) })
        if output.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(listing), as: UTF8.self))
            return
        }
        print("Fields (one saving each):")
        for f in listing.fields { print("  \(f.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(f.saves)") }
        print("\nPresets (fields on; what a DenseNet / ResNet / dense MLP honours):")
        for p in listing.presets {
            let honoured = ["densenet", "resnet", "dense-mlp"].map { "\($0): \(p.honoured[$0]?.count ?? 0)" }
            print("  \(p.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(p.fields.isEmpty ? "(none)" : p.fields.joined(separator: "+"))"
                  + "  [\(honoured.joined(separator: ", ")) fields]")
        }
        print("\nAblation ladder (Scripts/ablation_ladder.py):")
        for r in listing.ladder { print("  \(r.strategy.padding(toLength: 14, withPad: " ", startingAt: 0)) \(r.adds)") }
    }
}
