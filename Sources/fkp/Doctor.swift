import ArgumentParser
struct Doctor: ParsableCommand {}
