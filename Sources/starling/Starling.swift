import ArgumentParser
@main struct Starling: ParsableCommand { func run() {} }
