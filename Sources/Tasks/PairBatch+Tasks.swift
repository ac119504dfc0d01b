import Circuits

extension PairBatch {
    /// The token ids of tokenized task pairs, ready for the discovery methods.
    public init(_ pairs: [TokenizedPair]) {
        self.init(clean: pairs.map(\.clean), corrupt: pairs.map(\.corrupt), correct: pairs.map(\.correct),
                  incorrect: pairs.map(\.incorrect))
    }
}
