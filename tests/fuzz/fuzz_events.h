// Seed layout shared by the tap fuzz targets: SSE events written one per '\n'-terminated line as
// "name<TAB>data" (no TAB: an unnamed event), so seeds stay readable.
#pragma once

#include <string_view>

namespace gatehouse::fuzz {

// Calls `event(name, data)` for each line of `rest`.
template <typename F>
void forEachEventLine(std::string_view rest, F&& event) {
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos) {
      event(std::string_view(), line);
    } else {
      event(line.substr(0, tab), line.substr(tab + 1));
    }
  }
}

}  // namespace gatehouse::fuzz
