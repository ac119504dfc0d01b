import Transformer

extension Tokenizer {
    /// The token id of `text` when it encodes to exactly one token, else nil.
    func singleToken(_ text: String) -> Int? {
        let ids = encode(text)
        return ids.count == 1 ? ids[0] : nil
    }

    /// The words of `words` that are one token with a leading space, in their original order.
    func oneTokenWords(_ words: [String]) -> [String] {
        words.filter { singleToken(" " + $0) != nil }
    }
}
