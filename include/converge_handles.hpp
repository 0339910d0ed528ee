// converge_handles.hpp: part of the C++17 wrapper over converge.h, the
// types the engine works with: error, byte_view, packed_strings, options,
// batch, deltas, key_iterator, sync_session and the read results. Include
// converge.hpp (which includes this file), not this file alone; the
// overview and the thread-safety rules are at the top of converge.hpp.
#ifndef CONVERGE_HANDLES_HPP
#define CONVERGE_HANDLES_HPP

#include "converge.h"

#include <array>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace converge {

/// Owned bytes.
using bytes = std::vector<uint8_t>;
/// A replica id: 16 bytes, big-endian.
using replica_id = std::array<uint8_t, 16>;

/// A failed call: the status and the library's message.
class error : public std::runtime_error {
public:
  error(cvg_status_t status, const std::string &message)
      : std::runtime_error(std::string(cvg_status_name(status)) + ": " + message),
        status_(status) {}
  /// The C status.
  cvg_status_t status() const noexcept { return status_; }

private:
  cvg_status_t status_;
};

/// Borrowed input bytes.
class byte_view {
public:
  byte_view(const uint8_t *data, size_t size) noexcept : data_(data), size_(size) {}
  byte_view(std::string_view s) noexcept
      : data_(reinterpret_cast<const uint8_t *>(s.data())), size_(s.size()) {}
  byte_view(const std::string &s) noexcept : byte_view(std::string_view(s)) {}
  byte_view(const char *s) noexcept : byte_view(std::string_view(s)) {}
  byte_view(const bytes &b) noexcept : data_(b.data()), size_(b.size()) {}
  const uint8_t *data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }

private:
  const uint8_t *data_;
  size_t size_;
};

namespace detail {
inline std::string last_message() {
  std::string m(cvg_last_error_message(nullptr, 0), '\0');
  if (!m.empty())
    cvg_last_error_message(&m[0], m.size() + 1);
  return m;
}

inline void check(cvg_status_t status) {
  if (status != CVG_STATUS_OK)
    throw error(status, last_message());
}

inline bytes copy(const uint8_t *p, size_t n) { return n ? bytes(p, p + n) : bytes(); }

/// Take ownership of library bytes: copy them and free the original.
inline bytes take(cvg_bytes_t &b) {
  bytes out;
  try {
    out = copy(b.ptr, b.len);
  } catch (...) {
    cvg_bytes_free(&b);
    throw;
  }
  cvg_bytes_free(&b);
  return out;
}

inline std::string_view view(cvg_slice_t s) noexcept {
  return s.len ? std::string_view(reinterpret_cast<const char *>(s.ptr), s.len)
               : std::string_view();
}

/// Copy every item of a library list and free it.
inline std::vector<bytes> take_list(cvg_list_t *l) {
  std::vector<bytes> out;
  try {
    out.reserve(cvg_list_len(l));
    for (size_t i = 0; i < cvg_list_len(l); i++) {
      cvg_slice_t s;
      check(cvg_list_get(l, i, &s));
      out.push_back(copy(s.ptr, s.len));
    }
  } catch (...) {
    cvg_list_free(l);
    throw;
  }
  cvg_list_free(l);
  return out;
}

/// The bulk forms read `count` elements of each array: sizes must agree.
inline void same_count(size_t a, size_t b, const char *what) {
  if (a != b)
    throw error(CVG_STATUS_INVALID_ARGUMENT,
                std::string(what) + ": " + std::to_string(a) + " keys, " + std::to_string(b) +
                    " items");
}
} // namespace detail

/// Bytes as a std::string (handy for text keys and values).
inline std::string to_string(const bytes &b) { return std::string(b.begin(), b.end()); }

/// The library version string.
inline std::string version() { return cvg_version(); }

/// The name of a status ("CVG_STATUS_WRONG_TYPE", ...; "CVG_STATUS_UNKNOWN"
/// for a number the library does not know). Static; never null.
inline const char *status_name(cvg_status_t s) noexcept { return cvg_status_name(s); }

/// The name of a CRDT type ("gcounter", ..., "none" for CVG_CRDT_NONE), or
/// nullptr for a number that is no type. Static.
inline const char *crdt_type_name(cvg_crdt_type_t t) noexcept { return cvg_crdt_type_name(t); }

/// The name of a sync outcome ("running", "equal", "repaired", "converged",
/// "diverged", "failed"; "unknown" for another number). Static; never null.
inline const char *outcome_name(cvg_sync_outcome_t o) noexcept {
  return cvg_sync_outcome_name(o);
}

/// The name of a delivery ("applied", "pending", "duplicate"; "unknown"
/// for another number). Static; never null.
inline const char *delivery_name(cvg_delivery_t d) noexcept { return cvg_delivery_name(d); }

/// Byte strings packed back to back in one buffer, with their lengths: the
/// input of the batch bulk forms, which add many operations in one C call.
class packed_strings {
public:
  /// Append one byte string.
  packed_strings &push(byte_view b) {
    if (b.size() > 0)
      data_.insert(data_.end(), b.data(), b.data() + b.size());
    lengths_.push_back(b.size());
    return *this;
  }
  /// Number of byte strings.
  size_t size() const noexcept { return lengths_.size(); }
  /// Every byte string, back to back.
  const bytes &data() const noexcept { return data_; }
  /// The length of each byte string, in order.
  const std::vector<size_t> &lengths() const noexcept { return lengths_; }
  /// Remove every byte string, keeping the memory.
  void clear() noexcept {
    data_.clear();
    lengths_.clear();
  }

private:
  bytes data_;
  std::vector<size_t> lengths_;
};

/// Options for engine::open. Setters chain and throw on bad values.
class options {
public:
  options() : h_(cvg_options_new()) {
    if (!h_)
      throw error(CVG_STATUS_PANIC, "cvg_options_new failed");
  }
  ~options() { cvg_options_free(h_); }
  options(options &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  options &operator=(options &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  options(const options &) = delete;
  options &operator=(const options &) = delete;

  options &replica(const replica_id &id) {
    detail::check(cvg_options_set_replica_id(h_, id.data(), id.size()));
    return *this;
  }
  options &durability(cvg_durability_t d) {
    detail::check(cvg_options_set_durability(h_, d));
    return *this;
  }
  options &create_if_missing(bool v) {
    detail::check(cvg_options_set_create_if_missing(h_, v));
    return *this;
  }
  options &block_cache_bytes(size_t n) {
    detail::check(cvg_options_set_block_cache_bytes(h_, n));
    return *this;
  }
  options &write_buffer_bytes(size_t n) {
    detail::check(cvg_options_set_write_buffer_bytes(h_, n));
    return *this;
  }
  options &background_jobs(uint32_t n) {
    detail::check(cvg_options_set_background_jobs(h_, n));
    return *this;
  }
  options &compression(bool v) {
    detail::check(cvg_options_set_compression(h_, v));
    return *this;
  }
  options &bloom_bits_per_key(double bits) {
    detail::check(cvg_options_set_bloom_bits_per_key(h_, bits));
    return *this;
  }
  options &lock_stripes(size_t n) {
    detail::check(cvg_options_set_lock_stripes(h_, n));
    return *this;
  }
  options &anti_entropy(bool v) {
    detail::check(cvg_options_set_anti_entropy(h_, v));
    return *this;
  }
  options &max_successive_merges(size_t n) {
    detail::check(cvg_options_set_max_successive_merges(h_, n));
    return *this;
  }
  options &type_cache_entries(size_t n) {
    detail::check(cvg_options_set_type_cache_entries(h_, n));
    return *this;
  }
  options &state_cache_bytes(size_t n) {
    detail::check(cvg_options_set_state_cache_bytes(h_, n));
    return *this;
  }
  options &changes_feed(bool v) {
    detail::check(cvg_options_set_changes_feed(h_, v));
    return *this;
  }
  options &feed_retain_bytes(uint64_t n) {
    detail::check(cvg_options_set_feed_retain_bytes(h_, n));
    return *this;
  }
  options &max_pending(size_t n) {
    detail::check(cvg_options_set_max_pending(h_, n));
    return *this;
  }
  options &max_pending_bytes(uint64_t n) {
    detail::check(cvg_options_set_max_pending_bytes(h_, n));
    return *this;
  }
  /// The C handle (owned by this object).
  const cvg_options_t *get() const noexcept { return h_; }

private:
  cvg_options_t *h_;
};

/// All the deltas of a write at once (deltas::packed): both packed buffers
/// and their spans, viewing memory owned by the deltas object.
struct packed_deltas {
  /// Every key, back to back.
  std::string_view key_bytes;
  /// Where key i lies in key_bytes (count entries).
  const cvg_span_t *key_spans;
  /// Every encoded delta, back to back.
  std::string_view delta_bytes;
  /// Where delta i lies in delta_bytes (count entries).
  const cvg_span_t *delta_spans;
  /// Number of deltas.
  size_t count;

  /// Key i (throws std::out_of_range past the end).
  std::string_view key(size_t i) const { return at(key_bytes, key_spans, i); }
  /// Encoded delta i (throws std::out_of_range past the end).
  std::string_view delta(size_t i) const { return at(delta_bytes, delta_spans, i); }

private:
  std::string_view at(std::string_view all, const cvg_span_t *spans, size_t i) const {
    if (i >= count)
      throw std::out_of_range("converge::packed_deltas: index out of range");
    return all.substr(spans[i].offset, spans[i].len);
  }
};

/// The deltas of engine::write, packed; views stay valid while it lives.
/// Immutable: const methods may run on several threads at once.
class deltas {
public:
  explicit deltas(cvg_deltas_t *h) noexcept : h_(h) {}
  ~deltas() { cvg_deltas_free(h_); }
  deltas(deltas &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  deltas &operator=(deltas &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  deltas(const deltas &) = delete;
  deltas &operator=(const deltas &) = delete;

  size_t size() const noexcept { return cvg_deltas_len(h_); }
  /// Key and encoded delta of operation `i` (bytes viewed as chars).
  std::pair<std::string_view, std::string_view> operator[](size_t i) const {
    cvg_slice_t k, d;
    detail::check(cvg_deltas_get(h_, i, &k, &d));
    return {detail::view(k), detail::view(d)};
  }
  /// Every key and delta in one call (cvg_deltas_packed).
  packed_deltas packed() const {
    cvg_slice_t k, d;
    const cvg_span_t *ks = nullptr, *ds = nullptr;
    size_t n = 0;
    detail::check(cvg_deltas_packed(h_, &k, &ks, &d, &ds, &n));
    return packed_deltas{detail::view(k), ks, detail::view(d), ds, n};
  }
  /// The session token of the whole write (every operation's dot): wait
  /// for it with engine::wait_for on another replica to read the write.
  bytes token() const {
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_deltas_token(h_, &out));
    return detail::take(out);
  }
  /// The C handle (owned by this object).
  const cvg_deltas_t *get() const noexcept { return h_; }

private:
  cvg_deltas_t *h_;
};

// Session tokens: encoded causal contexts (engine::context, the token of a
// write), waited for with engine::wait_for on any replica. An empty byte
// string is the empty token.

/// The join of two tokens: everything either stands for.
inline bytes token_join(byte_view a, byte_view b) {
  cvg_bytes_t out{nullptr, 0};
  detail::check(cvg_token_join(a.data(), a.size(), b.data(), b.size(), &out));
  return detail::take(out);
}

/// The token of one write, from the delta it returned. A full state has
/// none (CVG_STATUS_INVALID_ARGUMENT).
inline bytes delta_token(byte_view delta) {
  cvg_bytes_t out{nullptr, 0};
  detail::check(cvg_delta_token(delta.data(), delta.size(), &out));
  return detail::take(out);
}

/// The token of many deltas packed in one buffer (for example received from
/// a peer); deltas::token() is the same for a write's own deltas.
inline bytes token_of(const packed_strings &deltas) {
  cvg_bytes_t out{nullptr, 0};
  detail::check(cvg_token_of_deltas(deltas.data().data(), deltas.data().size(),
                                    deltas.lengths().data(), deltas.size(), &out));
  return detail::take(out);
}

/// An atomic batch of operations (see engine::write). Adding needs one
/// user at a time; size() and engine::write (which reads it) may run on
/// several threads at once while nobody adds.
class batch {
public:
  batch() : h_(cvg_batch_new()) {
    if (!h_)
      throw error(CVG_STATUS_PANIC, "cvg_batch_new failed");
  }
  ~batch() { cvg_batch_free(h_); }
  batch(batch &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  batch &operator=(batch &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  batch(const batch &) = delete;
  batch &operator=(const batch &) = delete;

  size_t size() const noexcept { return cvg_batch_len(h_); }
  batch &clear() {
    detail::check(cvg_batch_clear(h_));
    return *this;
  }
  batch &increment(byte_view k, uint64_t n) {
    detail::check(cvg_batch_increment(h_, k.data(), k.size(), n));
    return *this;
  }
  batch &pn_add(byte_view k, int64_t n) {
    detail::check(cvg_batch_pn_add(h_, k.data(), k.size(), n));
    return *this;
  }
  batch &gset_add(byte_view k, byte_view e) {
    detail::check(cvg_batch_gset_add(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &twop_add(byte_view k, byte_view e) {
    detail::check(cvg_batch_twop_add(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &twop_remove(byte_view k, byte_view e) {
    detail::check(cvg_batch_twop_remove(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &orset_add(byte_view k, byte_view e) {
    detail::check(cvg_batch_orset_add(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &orset_remove(byte_view k, byte_view e) {
    detail::check(cvg_batch_orset_remove(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &orset_remove_observed(byte_view k, byte_view e, byte_view ctx) {
    detail::check(cvg_batch_orset_remove_observed(h_, k.data(), k.size(), e.data(),
                                                  e.size(), ctx.data(), ctx.size()));
    return *this;
  }
  /// Delete `k` (any type): what it holds when the batch is applied. A
  /// delete with nothing to delete has no delta in the write's deltas.
  batch &del(byte_view k) {
    detail::check(cvg_batch_delete(h_, k.data(), k.size()));
    return *this;
  }
  /// Delete what `observed` (an engine::state() read of `k`) holds. Bytes
  /// that do not decode throw CVG_STATUS_CORRUPT_INPUT now; a state of
  /// another type makes engine::write throw CVG_STATUS_WRONG_TYPE.
  batch &del_observed(byte_view k, byte_view observed) {
    detail::check(cvg_batch_delete_observed(h_, k.data(), k.size(), observed.data(),
                                            observed.size()));
    return *this;
  }
  batch &lww_set(byte_view k, byte_view v) {
    detail::check(cvg_batch_lww_set(h_, k.data(), k.size(), v.data(), v.size()));
    return *this;
  }
  batch &fww_set(byte_view k, byte_view v) {
    detail::check(cvg_batch_fww_set(h_, k.data(), k.size(), v.data(), v.size()));
    return *this;
  }
  batch &mv_write(byte_view k, byte_view v, byte_view ctx) {
    detail::check(cvg_batch_mv_write(h_, k.data(), k.size(), v.data(), v.size(),
                                     ctx.data(), ctx.size()));
    return *this;
  }
  batch &merge(byte_view k, byte_view b) {
    detail::check(cvg_batch_merge(h_, k.data(), k.size(), b.data(), b.size()));
    return *this;
  }

  // Bulk forms: one C call for many operations, all or nothing.
  /// Increment key i of `keys` by amounts[i].
  batch &increment_many(const packed_strings &keys, const std::vector<uint64_t> &amounts) {
    detail::same_count(keys.size(), amounts.size(), "increment_many");
    detail::check(cvg_batch_increment_many(h_, keys.data().data(), keys.data().size(),
                                           keys.lengths().data(), amounts.data(),
                                           amounts.size()));
    return *this;
  }
  /// Add amounts[i] to the PN-Counter at key i of `keys`.
  batch &pn_add_many(const packed_strings &keys, const std::vector<int64_t> &amounts) {
    detail::same_count(keys.size(), amounts.size(), "pn_add_many");
    detail::check(cvg_batch_pn_add_many(h_, keys.data().data(), keys.data().size(),
                                        keys.lengths().data(), amounts.data(), amounts.size()));
    return *this;
  }
  /// Merge values[i] (a peer's delta or state) into key i of `keys`.
  batch &merge_many(const packed_strings &keys, const packed_strings &values) {
    detail::same_count(keys.size(), values.size(), "merge_many");
    detail::check(cvg_batch_merge_many(h_, keys.data().data(), keys.data().size(),
                                       keys.lengths().data(), values.data().data(),
                                       values.data().size(), values.lengths().data(),
                                       keys.size()));
    return *this;
  }
  /// Merge every delta of a write (on another replica) into its key: the
  /// packed buffers go to the library as they are.
  batch &merge_many(const deltas &d) {
    packed_deltas p = d.packed();
    std::vector<size_t> key_lens(p.count), delta_lens(p.count);
    for (size_t i = 0; i < p.count; i++) {
      key_lens[i] = p.key_spans[i].len;
      delta_lens[i] = p.delta_spans[i].len;
    }
    detail::check(cvg_batch_merge_many(
        h_, reinterpret_cast<const uint8_t *>(p.key_bytes.data()), p.key_bytes.size(),
        key_lens.data(), reinterpret_cast<const uint8_t *>(p.delta_bytes.data()),
        p.delta_bytes.size(), delta_lens.data(), p.count));
    return *this;
  }
  /// The C handle (owned by this object).
  const cvg_batch_t *get() const noexcept { return h_; }

private:
  cvg_batch_t *h_;
};

/// A set read: members in byte order and the context for observed removes.
struct set_read {
  std::vector<bytes> members;
  bytes context;
};

/// A register's winning write.
struct stamped {
  bytes value;
  cvg_stamp_t stamp;
};

/// One MV register sibling.
struct sibling {
  bytes value;
  replica_id replica;
  uint64_t counter;
};

/// An MV register read: siblings and the context for the next write.
struct mv_read {
  std::vector<sibling> siblings;
  bytes context;
};

/// Iterator over keys with a prefix (see engine::keys).
class key_iterator {
public:
  explicit key_iterator(cvg_iter_t *h) noexcept : h_(h) {}
  ~key_iterator() { cvg_iter_free(h_); }
  key_iterator(key_iterator &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  key_iterator &operator=(key_iterator &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  key_iterator(const key_iterator &) = delete;
  key_iterator &operator=(const key_iterator &) = delete;

  /// The next key and its type, or nullopt at the end.
  std::optional<std::pair<std::string, cvg_crdt_type_t>> next() {
    bool has = false;
    cvg_slice_t k;
    cvg_crdt_type_t t = CVG_CRDT_NONE;
    detail::check(cvg_iter_next(h_, &has, &k, &t));
    if (!has)
      return std::nullopt;
    return std::make_pair(std::string(detail::view(k)), t);
  }

private:
  cvg_iter_t *h_;
};

/// The library's default sync session limits, to change field by field.
inline cvg_sync_config_t sync_config() noexcept { return cvg_sync_config_default(); }

/// One side of an anti-entropy sync session (move-only), created by
/// engine::sync_initiate or engine::sync_respond. Pass every message from
/// the peer to handle(), in order, and send every reply it returns, in
/// order, even the replies of the call that ended the session. The side
/// has ended when outcome() is no longer CVG_SYNC_RUNNING; a loop between
/// two sides stops when no message is in flight either way (see
/// cvg_sync_outcome_t for the pairs the sides end with). handle() needs
/// one user at a time; outcome() and stats() may run on several threads at
/// once, but not during handle(). Keeps the engine's store open until
/// destroyed.
class sync_session {
public:
  explicit sync_session(cvg_sync_t *h) noexcept : h_(h) {}
  ~sync_session() { cvg_sync_free(h_); }
  sync_session(sync_session &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  sync_session &operator=(sync_session &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  sync_session(const sync_session &) = delete;
  sync_session &operator=(const sync_session &) = delete;

  /// Handle one message from the peer; returns the messages to send back,
  /// in order (possibly none). A bad message throws (CVG_STATUS_CORRUPT_INPUT
  /// or CVG_STATUS_SYNC_PROTOCOL) and ends this side: CVG_SYNC_FAILED.
  std::vector<bytes> handle(byte_view message) {
    cvg_list_t *replies = nullptr;
    detail::check(cvg_sync_handle(h_, message.data(), message.size(), &replies));
    return detail::take_list(replies);
  }
  /// Take one message from the peer; pull the replies with next_message()
  /// until it returns nothing before passing the next one (a message given
  /// while replies wait is out of turn: CVG_STATUS_SYNC_PROTOCOL). Replies
  /// are built as they are pulled, so memory stays bounded. Errors as
  /// handle().
  void receive(byte_view message) {
    detail::check(cvg_sync_receive(h_, message.data(), message.size()));
  }
  /// The next message to send, or std::nullopt when this side has nothing
  /// to send until the peer answers (or it has ended).
  std::optional<bytes> next_message() {
    cvg_bytes_t out{nullptr, 0};
    bool more = false;
    detail::check(cvg_sync_next_message(h_, &out, &more));
    bytes message = detail::take(out);
    if (!more)
      return std::nullopt;
    return message;
  }
  /// CVG_FLAG_SYNC_* bits: TRUNCATED (more keys differed than one session
  /// repairs: run another), STAGING_OVERFLOWED.
  uint32_t flags() const {
    uint32_t f = 0;
    detail::check(cvg_sync_flags(h_, &f));
    return f;
  }
  /// CVG_SYNC_RUNNING until this side ends, then how it ended.
  cvg_sync_outcome_t outcome() const {
    cvg_sync_outcome_t o = CVG_SYNC_RUNNING;
    detail::check(cvg_sync_outcome(h_, &o));
    return o;
  }
  /// Whether this side has ended (outcome() is not CVG_SYNC_RUNNING).
  bool ended() const { return outcome() != CVG_SYNC_RUNNING; }
  /// After a session that ended CVG_SYNC_EQUAL or CVG_SYNC_CONVERGED: what
  /// the peer holds (an encoded causal context), to pass to
  /// engine::acknowledge for the peer's id when it is a member (the
  /// collection of tombstones waits for it). std::nullopt otherwise
  /// (running, diverged, failed): acknowledge nothing.
  std::optional<bytes> acknowledged() const {
    cvg_sync_outcome_t o = outcome();
    if (o != CVG_SYNC_EQUAL && o != CVG_SYNC_CONVERGED)
      return std::nullopt;
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_sync_acknowledged(h_, &out));
    return detail::take(out);
  }
  /// This side's traffic so far.
  cvg_sync_stats_t stats() const {
    cvg_sync_stats_t st{};
    detail::check(cvg_sync_stats(h_, &st));
    return st;
  }
  /// The C handle (owned by this object).
  const cvg_sync_t *get() const noexcept { return h_; }

private:
  cvg_sync_t *h_;
};

/// The initiator's side of a new session and the first message to send.
struct sync_start {
  sync_session session;
  bytes first_message;
};

/// What engine::verify_tree found.
struct verify_report {
  /// Whether the maintained anti-entropy tree equals a recomputed one.
  bool consistent;
  /// Number of keys hashed.
  uint64_t keys;
};

} // namespace converge

#endif
