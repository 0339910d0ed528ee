// Second translation unit of the wrapper test: including converge.hpp here
// too makes the linker catch one-definition-rule errors (a non-inline
// function or variable defined in the header would be defined twice).
#include "converge.hpp"

#include <string>

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
