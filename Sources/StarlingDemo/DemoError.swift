/// A reason the demo cannot go on, said to the user as is.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
