// Errors that reach the user. Every message names where the problem is (file and line, dataset and
// index, option name) so that the command line prints something a person can act on.
#pragma once
#include <stdexcept>
#include <string>

namespace shardrec {

// Bad input or configuration: reported as "error: <what>" and a non-zero exit.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown on every rank with the same message once the ranks have agreed on an error (io::agree),
// so that it is reported once, not once per rank.
class AgreedError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

#define SHARDREC_CHECK(cond, msg)            \
  do {                                       \
    if (!(cond)) ::shardrec::fail(msg);      \
  } while (0)

}  // namespace shardrec
