// Second translation unit of the wrapper test: including converge.hpp here
// too makes the linker catch one-definition-rule errors (a non-inline
// function or variable defined in the header would be defined twice).
#include "converge.hpp"

#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

// A partition on `b` while `a` is away: returns the delta to ship.
converge::bytes offline_edit(const converge::engine &b) {
  return b.orset_add("cart", "bread");
}

// The same wrapper calls as the other unit, instantiating the same inline
// functions and templates.
std::string first_member(const converge::engine &e, const std::string &key) {
  converge::set_read r = e.members(key);
  return r.members.empty() ? std::string() : converge::to_string(r.members[0]);
}

int status_of_wrong_type(const converge::engine &e) {
  try {
    e.increment("cart", 1);
  } catch (const converge::error &err) {
    return static_cast<int>(err.status());
  }
  return -1;
}

// One sync session carried by hand between two engines (`a` initiates),
// one queue per direction, until no message is in flight: both outcomes.
std::pair<cvg_sync_outcome_t, cvg_sync_outcome_t> sync_by_hand(const converge::engine &a,
                                                               const converge::engine &b) {
  converge::sync_start start = a.sync_initiate();
  converge::sync_session responder = b.sync_respond();
  std::deque<converge::bytes> to_a, to_b{start.first_message};
  while (!to_a.empty() || !to_b.empty()) {
    std::deque<converge::bytes> &in = to_b.empty() ? to_a : to_b;
    std::deque<converge::bytes> &out = to_b.empty() ? to_b : to_a;
    converge::sync_session &side = to_b.empty() ? start.session : responder;
    side.receive(in.front());
    in.pop_front();
    while (std::optional<converge::bytes> reply = side.next_message())
      out.push_back(std::move(*reply));
    if (side.flags() != 0)
      throw std::runtime_error("a small session is neither truncated nor overflowed");
  }
  return {start.session.outcome(), responder.outcome()};
}

// Push every operation of `from` that `cursor` lacks to `to`, a page of at
// most `limit` at a time; `cursor` becomes the next one. Returns the
// number of pages applied.
int push_feed(const converge::engine &from, const converge::engine &to, converge::bytes &cursor,
              size_t limit) {
  int pages = 0;
  for (bool more = true; more;) {
    converge::feed_page page = from.changes_since(cursor, limit);
    if (page.changes) {
      to.apply_changes(*page.changes);
      pages++;
    }
    cursor = std::move(page.next);
    more = page.more;
  }
  return pages;
}
