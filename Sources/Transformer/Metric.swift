/// A task metric, read at each example's last real token and averaged over examples (design §5).
public enum Metric: String, CaseIterable, Codable, Sendable {
    /// Mean logit of the correct tokens minus mean logit of the incorrect tokens.
    case logitDiff = "logit_diff"
    /// Σ p(correct) − Σ p(incorrect).
    case probDiff = "prob_diff"
    /// KL(p_clean ‖ p_run) over the whole vocabulary.
    case kl
    /// Mean log-probability of the correct tokens.
    case logprob
}
