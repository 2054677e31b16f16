#include "dataset/gsm8k.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"

namespace moerl {
namespace {

absl::Status RowError(absl::string_view file, int64_t line_number, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ":", line_number, ": ", what));
}

}  // namespace

absl::StatusOr<Gsm8kRow> ParseGsm8kRow(absl::string_view line, absl::string_view file,
                                       int64_t line_number) {
  nlohmann::json json = nlohmann::json::parse(line.begin(), line.end(), nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) return RowError(file, line_number, "not valid JSON");
  if (!json.is_object()) return RowError(file, line_number, "expected a JSON object");
  Gsm8kRow row;
  for (const char* key : {"question", "answer"}) {
    auto it = json.find(key);
    if (it == json.end() || !it->is_string()) {
      return RowError(file, line_number,
                      absl::StrCat("expected a string field \"", key, "\""));
    }
  }
  row.line_number = line_number;
  row.question = json["question"].get<std::string>();
  row.answer = json["answer"].get<std::string>();
  const size_t marker = row.answer.rfind("####");
  if (marker == std::string::npos) {
    return RowError(file, line_number, "answer has no final \"#### <number>\" line");
  }
  row.gold_answer =
      std::string(absl::StripAsciiWhitespace(absl::string_view(row.answer).substr(marker + 4)));
  if (row.gold_answer.empty()) {
    return RowError(file, line_number, "nothing after \"####\" in answer");
  }
  return row;
}

absl::StatusOr<Gsm8kFile> LoadGsm8kFile(const std::string& path,
                                        const Gsm8kLoadOptions& options) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open GSM8K file ", path));
  Gsm8kFile file;
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::StatusOr<Gsm8kRow> row = ParseGsm8kRow(line, path, line_number);
    if (row.ok()) {
      file.rows.push_back(*std::move(row));
      continue;
    }
    if (!options.skip_malformed) return row.status();
    if (file.skipped_rows++ == 0) file.first_skipped = row.status();
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return file;
}

}  // namespace moerl
