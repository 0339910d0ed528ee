// converge.hpp: header-only C++17 wrapper over the C ABI in converge.h.
//
// - Handles are move-only RAII objects: engine, options, batch, deltas,
//   key_iterator, sync_session. Destructors never throw (engine's
//   destructor closes and ignores the status: call close() to see it).
// - Every failure throws converge::error, carrying the cvg_status_t and the
//   library's message.
// - Keys, values and encoded bytes are passed as byte_view (built from
//   std::string_view, std::string, const char *, std::vector<uint8_t>) and
//   returned as converge::bytes (std::vector<uint8_t>). The bulk forms take
//   packed_strings: many byte strings in one buffer.
// - Session tokens are bytes: engine::context(), deltas::token(),
//   delta_token(), token_join(); engine::wait_for(token, timeout) returns
//   false while the replica does not hold the token yet.
// - Causal delivery and the changes feed: engine::pending(),
//   changes_since(cursor, limit), apply_changes(page), feed_info(),
//   register_peer / acknowledge / remove_peer; cursors are bytes like
//   tokens.
// - Deletes and the collection of tombstones: engine::del(k) and
//   del_observed(k, state) return the delta, or std::nullopt when there
//   was nothing to delete (so do orset_remove and orset_remove_observed
//   when the remove removed nothing); batch::del / del_observed; engine::collect()
//   and tombstones() (a collect_report: what was collected, what waits on
//   whom); engine::membership() (the registered replicas and what they
//   acknowledged; not members(k), which reads a set);
//   sync_session::acknowledged(); engine::stored_keys() also lists keys
//   that read as absent. A sync with a replica behind the collection
//   horizon throws CVG_STATUS_BEHIND_HORIZON.
// - Thread safety is the C API's (docs/C_API.md, "Threads"): const methods
//   may run on several threads at once on the same object (engine: every
//   operation and read; batch: size() and being written by engine::write;
//   deltas; sync_session: outcome() and stats()); non-const methods need
//   one user at a time (options and batch setters, key_iterator::next,
//   sync_session::handle, assignment). engine::close() is const: it may
//   run while other threads use the engine, whose later calls throw
//   CVG_STATUS_CLOSED. Objects may move between threads.
//
// Include this file. It holds the engine; the types it works with are in
// converge_handles.hpp, which it includes.
#ifndef CONVERGE_HPP
#define CONVERGE_HPP

#include "converge_handles.hpp"

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace converge {

namespace detail {
template <class F> struct resolve_ctx {
  F *fn;
  std::exception_ptr failure;
};

template <class F>
int resolve_trampoline(void *user, const cvg_sibling_t *s, size_t n, cvg_buffer_t *out) {
  auto *ctx = static_cast<resolve_ctx<F> *>(user);
  try { // no exception may cross into the library
    std::vector<sibling> sibs;
    sibs.reserve(n);
    for (size_t i = 0; i < n; i++) {
      sibling x{copy(s[i].value.ptr, s[i].value.len), {}, s[i].counter};
      for (size_t j = 0; j < 16; j++)
        x.replica[j] = s[i].replica[j];
      sibs.push_back(std::move(x));
    }
    bytes merged = (*ctx->fn)(static_cast<const std::vector<sibling> &>(sibs));
    return cvg_buffer_append(out, merged.data(), merged.size()) == CVG_STATUS_OK ? 0 : 1;
  } catch (...) {
    ctx->failure = std::current_exception();
    return 1;
  }
}
} // namespace detail

/// What the pending area holds (engine::pending): deltas and pages of
/// changes received before their causal dependencies, invisible until
/// those arrive.
struct pending_info {
  /// Entries waiting (a delta, or a page of changes).
  uint64_t entries;
  /// Their encoded size in bytes.
  uint64_t size;
  /// How many operations of `needed` this replica lacks.
  uint64_t missing;
  /// Entries whose dependencies are met but that cannot be applied.
  uint64_t stuck;
  /// The join of what the entries need, as a token: hold it and every
  /// entry but the stuck ones has been applied.
  bytes needed;
};

/// One page of the changes feed (engine::changes_since).
struct feed_page {
  /// The page to ship to the peer, for its engine::apply_changes; nullopt
  /// when the cursor lacks nothing.
  std::optional<bytes> changes;
  /// How many operations the page carries.
  uint64_t operations;
  /// The cursor to ask from next: the given one plus the page's
  /// operations.
  bytes next;
  /// Whether the log holds more operations that `next` lacks.
  bool more;
};

/// A peer registered with the changes feed and the cursor it acknowledged.
struct feed_peer {
  replica_id id;
  bytes cursor;
};

/// The state of the changes feed (engine::feed_info).
struct feed_state {
  /// The oldest sequence number the log retains (it holds floor..=last).
  uint64_t floor;
  /// The last sequence number this replica issued.
  uint64_t last;
  /// Bytes the log holds.
  uint64_t size;
  /// The registered peers, by ascending id.
  std::vector<feed_peer> peers;
};

/// A replica holding the collection of tombstones back (collect_report).
struct blocker {
  replica_id id;
  /// How many tombstones wait for it.
  uint64_t tombstones;
};

/// What engine::collect did, or engine::tombstones finds now.
struct collect_report {
  /// Tombstones collected (tombstones(): that could be collected now).
  uint64_t collected;
  /// Of those, keys removed entirely.
  uint64_t purged;
  /// Tombstones whose deletes some member (or this replica) lacks.
  uint64_t waiting;
  /// The replicas waited on, by ascending id.
  std::vector<blocker> waiting_on;
  /// The deletes collected so far, an encoded version vector.
  bytes horizon;
};

/// A registered replica (engine::membership) and the causal context it
/// acknowledged.
struct member {
  replica_id id;
  bytes acknowledged;
};

/// An open replica store (move-only). Const methods, close() included, may
/// run on any number of threads at once; assignment needs exclusive
/// access.
class engine {
public:
  /// Open (or create) the store in `path`.
  explicit engine(const std::string &path) { detail::check(cvg_engine_open(path.c_str(), nullptr, &h_)); }
  engine(const std::string &path, const options &o) {
    detail::check(cvg_engine_open(path.c_str(), o.get(), &h_));
  }
  ~engine() { cvg_engine_close(h_); }
  engine(engine &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  engine &operator=(engine &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  engine(const engine &) = delete;
  engine &operator=(const engine &) = delete;

  /// Close now and report the status. May run while other threads are
  /// inside const methods of this engine (it does not change the object):
  /// they finish, and every method called afterwards throws
  /// CVG_STATUS_CLOSED. The engine is closed whatever the status; with
  /// iterators or sync sessions still alive it throws
  /// CVG_STATUS_INVALID_ARGUMENT and the store closes when the last goes.
  /// A second close() (or one on a moved-from engine) does nothing.
  void close() const {
    cvg_status_t st = cvg_engine_close(h_);
    if (st != CVG_STATUS_CLOSED)
      detail::check(st);
  }

  replica_id id() const {
    replica_id r{};
    detail::check(cvg_engine_replica_id(h_, r.data()));
    return r;
  }

  // Operations: each returns its encoded delta, for peers' merge().
  bytes increment(byte_view k, uint64_t n) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_increment(h_, k.data(), k.size(), n, o); });
  }
  bytes pn_add(byte_view k, int64_t n) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_pn_add(h_, k.data(), k.size(), n, o); });
  }
  bytes gset_add(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_gset_add(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes twop_add(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_twop_add(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes twop_remove(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_twop_remove(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes orset_add(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_orset_add(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  /// Remove every add of `e` observed now: the delta, or std::nullopt when
  /// the remove removed nothing (`e` not a member, or no such key); such a
  /// remove writes nothing and does not create the key.
  std::optional<bytes> orset_remove(byte_view k, byte_view e) const {
    bytes d = op([&](cvg_bytes_t *o) { return cvg_engine_orset_remove(h_, k.data(), k.size(), e.data(), e.size(), o); });
    if (d.empty())
      return std::nullopt;
    return d;
  }
  /// Remove the adds of `e` within `ctx` (an earlier members(k) read's
  /// context): the delta, or std::nullopt when that removed nothing.
  std::optional<bytes> orset_remove_observed(byte_view k, byte_view e, byte_view ctx) const {
    bytes d = op([&](cvg_bytes_t *o) {
      return cvg_engine_orset_remove_observed(h_, k.data(), k.size(), e.data(), e.size(), ctx.data(), ctx.size(), o);
    });
    if (d.empty())
      return std::nullopt;
    return d;
  }
  bytes lww_set(byte_view k, byte_view v) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_lww_set(h_, k.data(), k.size(), v.data(), v.size(), o); });
  }
  bytes fww_set(byte_view k, byte_view v) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_fww_set(h_, k.data(), k.size(), v.data(), v.size(), o); });
  }
  bytes mv_write(byte_view k, byte_view v, byte_view ctx) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_mv_write(h_, k.data(), k.size(), v.data(), v.size(), ctx.data(),
                                  ctx.size(), o); });
  }
  /// Delete `k`, whatever its type (what this replica holds of it now):
  /// the delta, or std::nullopt when there was nothing to delete (never
  /// written, or already absent). The key then reads as absent.
  std::optional<bytes> del(byte_view k) const {
    bytes d = op([&](cvg_bytes_t *o) { return cvg_engine_delete(h_, k.data(), k.size(), o); });
    if (d.empty())
      return std::nullopt;
    return d;
  }
  /// Delete only what `observed` (an earlier state(k) read) holds: later
  /// writes survive. Bad bytes throw CVG_STATUS_CORRUPT_INPUT, a state of
  /// another type CVG_STATUS_WRONG_TYPE; nothing changes then.
  std::optional<bytes> del_observed(byte_view k, byte_view observed) const {
    bytes d = op([&](cvg_bytes_t *o) {
      return cvg_engine_delete_observed(h_, k.data(), k.size(), observed.data(), observed.size(), o);
    });
    if (d.empty())
      return std::nullopt;
    return d;
  }
  /// Join a peer's delta or state into `k`.
  void merge(byte_view k, byte_view b) const {
    detail::check(cvg_engine_merge(h_, k.data(), k.size(), b.data(), b.size()));
  }
  /// Apply a batch atomically; returns its deltas.
  deltas write(const batch &b) const {
    cvg_deltas_t *d = nullptr;
    detail::check(cvg_engine_write(h_, b.get(), &d));
    return deltas(d);
  }
  /// Apply a batch atomically, without its deltas.
  void apply(const batch &b) const { detail::check(cvg_engine_write(h_, b.get(), nullptr)); }

  // Reads.
  int64_t counter(byte_view k) const {
    int64_t v = 0;
    detail::check(cvg_engine_counter_value(h_, k.data(), k.size(), &v));
    return v;
  }
  /// The counter as 128 bits (never overflows).
  cvg_i128_t counter_wide(byte_view k) const {
    cvg_i128_t v{0, 0};
    detail::check(cvg_engine_counter_value_wide(h_, k.data(), k.size(), &v));
    return v;
  }
  set_read members(byte_view k) const {
    cvg_list_t *l = nullptr;
    cvg_bytes_t ctx{nullptr, 0};
    detail::check(cvg_engine_set_members(h_, k.data(), k.size(), &l, &ctx));
    set_read r;
    try {
      r.context = detail::take(ctx); // frees ctx, also when it throws
    } catch (...) {
      cvg_list_free(l);
      throw;
    }
    r.members = detail::take_list(l);
    return r;
  }
  std::optional<stamped> reg(byte_view k) const {
    bool found = false;
    cvg_stamp_t st;
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_engine_register(h_, k.data(), k.size(), &found, &out, &st));
    bytes v = detail::take(out);
    if (!found)
      return std::nullopt;
    return stamped{std::move(v), st};
  }
  mv_read mv(byte_view k) const {
    cvg_siblings_t *s = nullptr;
    cvg_bytes_t ctx{nullptr, 0};
    detail::check(cvg_engine_mv_read(h_, k.data(), k.size(), &s, &ctx));
    mv_read r;
    try {
      r.context = detail::copy(ctx.ptr, ctx.len);
      for (size_t i = 0; i < cvg_siblings_len(s); i++) {
        cvg_sibling_t x;
        detail::check(cvg_siblings_get(s, i, &x));
        sibling y{detail::copy(x.value.ptr, x.value.len), {}, x.counter};
        for (size_t j = 0; j < 16; j++)
          y.replica[j] = x.replica[j];
        r.siblings.push_back(std::move(y));
      }
    } catch (...) {
      cvg_siblings_free(s);
      cvg_bytes_free(&ctx);
      throw;
    }
    cvg_siblings_free(s);
    cvg_bytes_free(&ctx);
    return r;
  }
  /// Resolve MV siblings with `fn(const std::vector<sibling>&) -> bytes`.
  /// Returns the delta, or nullopt if there were fewer than two siblings.
  /// An exception from `fn` is rethrown here, and nothing is written.
  template <class F> std::optional<bytes> mv_resolve(byte_view k, F fn) const {
    detail::resolve_ctx<F> ctx{&fn, nullptr};
    bool resolved = false;
    cvg_bytes_t out{nullptr, 0};
    cvg_status_t st = cvg_engine_mv_resolve(h_, k.data(), k.size(), &detail::resolve_trampoline<F>,
                                            &ctx, &resolved, &out);
    if (ctx.failure)
      std::rethrow_exception(ctx.failure);
    detail::check(st);
    bytes d = detail::take(out);
    if (!resolved)
      return std::nullopt;
    return d;
  }

  // Metadata and anti-entropy.
  cvg_crdt_type_t key_type(byte_view k) const {
    cvg_crdt_type_t t = CVG_CRDT_NONE;
    detail::check(cvg_engine_key_type(h_, k.data(), k.size(), &t));
    return t;
  }
  std::optional<bytes> state(byte_view k) const {
    bool found = false;
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_engine_state_bytes(h_, k.data(), k.size(), &found, &out));
    bytes s = detail::take(out);
    if (!found)
      return std::nullopt;
    return s;
  }
  key_iterator keys(byte_view prefix = byte_view(nullptr, 0)) const {
    cvg_iter_t *it = nullptr;
    detail::check(cvg_engine_keys(h_, prefix.data(), prefix.size(), &it));
    return key_iterator(it);
  }
  /// As keys(), but also the keys that read as absent (deleted, their
  /// tombstones not collected yet).
  key_iterator stored_keys(byte_view prefix = byte_view(nullptr, 0)) const {
    cvg_iter_t *it = nullptr;
    detail::check(cvg_engine_stored_keys(h_, prefix.data(), prefix.size(), &it));
    return key_iterator(it);
  }
  bytes version_vector() const {
    cvg_bytes_t b{nullptr, 0};
    detail::check(cvg_engine_version_vector(h_, &b));
    return detail::take(b);
  }
  cvg_root_t root() const {
    cvg_root_t r;
    detail::check(cvg_engine_root(h_, &r));
    return r;
  }
  bool verify() const { return verify_tree().consistent; }
  /// Recompute the anti-entropy tree and compare: the result and key count.
  verify_report verify_tree() const {
    verify_report r{false, 0};
    detail::check(cvg_engine_verify(h_, &r.consistent, &r.keys));
    return r;
  }
  size_t settle() const {
    size_t n = 0;
    detail::check(cvg_engine_settle(h_, &n));
    return n;
  }
  // Session tokens (converge_handles.hpp: token_join, delta_token,
  // token_of, deltas::token).
  /// Every operation this replica holds, as a token: wait for it on another
  /// replica to read there at least what can be read here now.
  bytes context() const {
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_engine_context(h_, &out));
    return detail::take(out);
  }
  /// Wait at most `timeout` (zero, the default: do not wait) until this
  /// replica holds every operation of `token`. True once it does: reads
  /// then see the token's effects. False if the time is up first
  /// (CVG_STATUS_NOT_YET_VISIBLE). Other failures throw (a token that does
  /// not decode: CVG_STATUS_CORRUPT_INPUT). Woken by commits, not polling.
  bool wait_for(byte_view token,
                std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) const {
    // A signed count never reaches CVG_WAIT_FOREVER: the wait stays bounded.
    uint64_t ms = timeout.count() > 0 ? static_cast<uint64_t>(timeout.count()) : 0;
    cvg_status_t st = cvg_engine_wait_for(h_, token.data(), token.size(), ms);
    if (st == CVG_STATUS_NOT_YET_VISIBLE)
      return false;
    detail::check(st);
    return true;
  }
  /// Wait without a time limit until this replica holds `token`.
  void wait(byte_view token) const {
    detail::check(cvg_engine_wait_for(h_, token.data(), token.size(), CVG_WAIT_FOREVER));
  }
  /// How many operations of `token` this replica does not hold yet.
  uint64_t token_missing(byte_view token) const {
    uint64_t n = 0;
    detail::check(cvg_engine_token_missing(h_, token.data(), token.size(), &n));
    return n;
  }

  // Causal delivery and the changes feed (docs/C_API.md, "Causal delivery
  // and the changes feed").
  /// What the pending area holds.
  pending_info pending() const {
    cvg_pending_info_t p{};
    cvg_bytes_t needed{nullptr, 0};
    detail::check(cvg_engine_pending(h_, &p, &needed));
    bytes n = detail::take(needed);
    return pending_info{p.entries, p.bytes, p.missing, p.stuck, std::move(n)};
  }
  /// The operations of this replica that `cursor` (what the peer holds:
  /// its context(), the previous page's `next`, or empty) lacks, at most
  /// `limit` of them, as one page. Throws CVG_STATUS_CURSOR_TOO_OLD when
  /// the log no longer holds them (sync with the peer, then continue from
  /// its context()).
  feed_page changes_since(byte_view cursor, size_t limit) const {
    cvg_bytes_t page{nullptr, 0}, next{nullptr, 0};
    feed_page r{std::nullopt, 0, bytes(), false};
    detail::check(cvg_engine_changes_since(h_, cursor.data(), cursor.size(), limit, &page, &next,
                                           &r.operations, &r.more));
    try {
      r.next = detail::take(next); // frees next, also when it throws
    } catch (...) {
      cvg_bytes_free(&page);
      throw;
    }
    if (page.len > 0)
      r.changes = detail::take(page);
    return r;
  }
  /// Apply a page of changes from a peer, atomically: CVG_DELIVERY_APPLIED,
  /// CVG_DELIVERY_PENDING (it waits for what it depends on) or
  /// CVG_DELIVERY_DUPLICATE (nothing changed).
  cvg_delivery_t apply_changes(byte_view page) const {
    cvg_delivery_t d = CVG_DELIVERY_APPLIED;
    detail::check(cvg_engine_apply_changes(h_, page.data(), page.size(), &d));
    return d;
  }
  /// The state of the changes feed and its registered peers (one snapshot).
  feed_state feed_info() const {
    cvg_feed_info_t f{};
    cvg_list_t *ids = nullptr, *cursors = nullptr;
    detail::check(cvg_engine_feed_info(h_, &f, &ids, &cursors));
    std::vector<bytes> id_bytes;
    try {
      id_bytes = detail::take_list(ids); // frees ids, also when it throws
    } catch (...) {
      cvg_list_free(cursors);
      throw;
    }
    std::vector<bytes> acked = detail::take_list(cursors);
    feed_state r{f.floor, f.last, f.bytes, {}};
    for (size_t i = 0; i < id_bytes.size() && i < acked.size(); i++) {
      feed_peer p{replica_id{}, std::move(acked[i])};
      for (size_t j = 0; j < p.id.size() && j < id_bytes[i].size(); j++)
        p.id[j] = id_bytes[i][j];
      r.peers.push_back(std::move(p));
    }
    return r;
  }
  /// Keep the log for `peer` until it acknowledges (up to the retention
  /// bound). Registering twice changes nothing.
  void register_peer(const replica_id &peer) const {
    detail::check(cvg_engine_register_peer(h_, peer.data(), peer.size()));
  }
  /// Record that the registered `peer` holds `cursor`; the log is truncated
  /// of what every registered peer holds.
  void acknowledge(const replica_id &peer, byte_view cursor) const {
    detail::check(
        cvg_engine_acknowledge(h_, peer.data(), peer.size(), cursor.data(), cursor.size()));
  }
  /// Forget a registered peer (an unknown one: nothing changes).
  void remove_peer(const replica_id &peer) const {
    detail::check(cvg_engine_remove_peer(h_, peer.data(), peer.size()));
  }

  // Deletes and the collection of tombstones (docs/C_API.md, "Deletes and
  // the collection of tombstones").
  /// Collect the tombstones every member has acknowledged; what waits, on
  /// whom.
  collect_report collect() const { return scan(&cvg_engine_collect); }
  /// What collect() would collect now, without collecting.
  collect_report tombstones() const { return scan(&cvg_engine_tombstones); }
  /// The registered replicas (register_peer) and the contexts they
  /// acknowledged, by ascending id. Works with the changes feed off.
  std::vector<member> membership() const {
    cvg_list_t *ids = nullptr, *ctxs = nullptr;
    detail::check(cvg_engine_members(h_, &ids, &ctxs));
    std::vector<bytes> id_bytes;
    try {
      id_bytes = detail::take_list(ids); // frees ids, also when it throws
    } catch (...) {
      cvg_list_free(ctxs);
      throw;
    }
    std::vector<bytes> acked = detail::take_list(ctxs);
    std::vector<member> r;
    for (size_t i = 0; i < id_bytes.size() && i < acked.size(); i++) {
      member m{replica_id{}, std::move(acked[i])};
      for (size_t j = 0; j < m.id.size() && j < id_bytes[i].size(); j++)
        m.id[j] = id_bytes[i][j];
      r.push_back(std::move(m));
    }
    return r;
  }

  void flush() const { detail::check(cvg_engine_flush(h_)); }
  void sync_wal() const { detail::check(cvg_engine_sync_wal(h_)); }

  // Anti-entropy sync sessions (see sync_session).
  /// Start a session as the initiator: the session and its first message.
  sync_start sync_initiate(const cvg_sync_config_t &config = sync_config()) const {
    cvg_sync_t *s = nullptr;
    cvg_bytes_t first{nullptr, 0};
    detail::check(cvg_sync_initiate(h_, &config, &s, &first));
    sync_session session(s);
    bytes message = detail::take(first);
    return sync_start{std::move(session), std::move(message)};
  }
  /// Create the responder side of a session: hand it the first message.
  sync_session sync_respond(const cvg_sync_config_t &config = sync_config()) const {
    cvg_sync_t *s = nullptr;
    detail::check(cvg_sync_respond(h_, &config, &s));
    return sync_session(s);
  }
  /// Run a whole session with another engine of this process (this one
  /// initiates): both sides' outcomes, this one's first.
  std::pair<cvg_sync_outcome_t, cvg_sync_outcome_t>
  sync_with(const engine &peer, const cvg_sync_config_t &config = sync_config()) const {
    cvg_sync_outcome_t mine = CVG_SYNC_RUNNING, theirs = CVG_SYNC_RUNNING;
    detail::check(cvg_sync_engines(h_, peer.h_, &config, &mine, &theirs));
    return {mine, theirs};
  }
  /// The C handle (owned by this object).
  const cvg_engine_t *get() const noexcept { return h_; }

private:
  /// Run an operation with a delta output and take the delta.
  template <class Call> static bytes op(Call call) {
    cvg_bytes_t out{nullptr, 0};
    detail::check(call(&out));
    return detail::take(out);
  }
  /// cvg_engine_collect or cvg_engine_tombstones, into a collect_report.
  template <class Fn> collect_report scan(Fn fn) const {
    cvg_collect_report_t r{};
    cvg_blockers_t *bl = nullptr;
    cvg_bytes_t horizon{nullptr, 0};
    detail::check(fn(h_, &r, &bl, &horizon));
    collect_report out{r.collected, r.purged, r.waiting, {}, bytes()};
    try {
      out.horizon = detail::take(horizon); // frees horizon, also when it throws
      for (size_t i = 0; i < cvg_blockers_len(bl); i++) {
        cvg_blocker_t b;
        detail::check(cvg_blockers_get(bl, i, &b));
        blocker x{replica_id{}, b.tombstones};
        for (size_t j = 0; j < x.id.size(); j++)
          x.id[j] = b.replica[j];
        out.waiting_on.push_back(x);
      }
    } catch (...) {
      cvg_blockers_free(bl);
      throw;
    }
    cvg_blockers_free(bl);
    return out;
  }
  cvg_engine_t *h_ = nullptr;
};

} // namespace converge

#endif
