// Plain-text tables for the CLI's list commands (`gatehouse admin …`): column widths from the
// widest cell, two spaces between columns, header first. Cells are formatted from JSON values.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gatehouse::cmd {

// A JSON value as a cell: strings as is, arrays comma-joined ("-" when empty), booleans yes/no,
// null "-", anything else its JSON text.
std::string cell(const nlohmann::json& v);
// Unix seconds as "YYYY-MM-DD HH:MM" UTC; 0 or missing is "never".
std::string when(const nlohmann::json& unix_seconds);
void printTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

}  // namespace gatehouse::cmd
