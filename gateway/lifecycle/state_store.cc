#include "gateway/lifecycle/state_store.h"

#include <sqlite3.h>

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "worker/common/status_macros.h"

namespace doze::lifecycle {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS ledger_hours (
  function TEXT NOT NULL, hour INTEGER NOT NULL, busy_s REAL NOT NULL, idle_s REAL NOT NULL,
  warming_s REAL NOT NULL, off_s REAL NOT NULL, cold_starts INTEGER NOT NULL, cost REAL,
  PRIMARY KEY (function, hour));
CREATE TABLE IF NOT EXISTS cold_waits (function TEXT NOT NULL, at_us INTEGER NOT NULL, wait_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tracking (function TEXT PRIMARY KEY, since_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS archive_marks (
  function TEXT PRIMARY KEY, archived INTEGER NOT NULL, at_us INTEGER NOT NULL, reason TEXT NOT NULL,
  operator_restored_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transitions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, function TEXT NOT NULL, at_us INTEGER NOT NULL, from_state TEXT NOT NULL,
  to_state TEXT NOT NULL, reason TEXT NOT NULL);
)sql";

int64_t ToMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return INT64_MIN;
  if (t == absl::InfiniteFuture()) return INT64_MAX;
  return absl::ToUnixMicros(t);
}

absl::Time FromMicros(int64_t micros) {
  if (micros == INT64_MIN) return absl::InfinitePast();
  if (micros == INT64_MAX) return absl::InfiniteFuture();
  return absl::FromUnixMicros(micros);
}

// One prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }

  // Returns the preparation's error, if any.
  absl::Status status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("state file: ", sqlite3_errmsg(db_)));
  }
  Statement& Bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& Bind(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
    return *this;
  }
  Statement& Bind(int index, const std::string& value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // Steps once; true while a row is available.
  absl::StatusOr<bool> Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return absl::InternalError(absl::StrCat("state file: ", sqlite3_errmsg(db_)));
  }
  // Runs a statement that returns no rows, then resets it for the next bindings.
  absl::Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    sqlite3_reset(stmt_);
    return absl::OkStatus();
  }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  double Real(int column) const { return sqlite3_column_double(stmt_, column); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path) {
  gateway::OwnerLock lock;
  if (path != ":memory:") {
    ASSIGN_OR_RETURN(lock, gateway::OwnerLock::Acquire(
                               path, "two gateways on one state file would overwrite each other's ledger"));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    const std::string message = db == nullptr ? "out of memory" : sqlite3_errmsg(db);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat(path, ": ", message));
  }
  std::unique_ptr<StateStore> store(new StateStore(db, std::move(lock)));
  // WAL keeps a crash from losing committed rows and lets readers (status pages) run beside the writer.
  for (const char* sql : {"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", kSchema}) {
    if (!store->Exec(sql).ok()) return absl::UnavailableError(absl::StrCat(path, ": ", sqlite3_errmsg(db)));
  }
  // A file written before the ledger kept prices: its hours gain a cost column, NULL until written again.
  if (!store->HasColumn("ledger_hours", "cost") &&
      !store->Exec("ALTER TABLE ledger_hours ADD COLUMN cost REAL").ok()) {
    return absl::UnavailableError(absl::StrCat(path, ": ", sqlite3_errmsg(db)));
  }
  return store;
}

absl::Status StateStore::CheckUsable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_directory(path, error)) return absl::FailedPreconditionError(absl::StrCat(path, " is a folder"));
  if (!fs::exists(path, error)) {
    // The folders the gateway would create: the nearest one that exists must be a folder.
    for (fs::path up = fs::path(path).parent_path(); !up.empty(); up = up.parent_path()) {
      if (!fs::exists(up, error)) continue;
      if (!fs::is_directory(up, error))
        return absl::FailedPreconditionError(absl::StrCat(path, ": ", up.string(), " is not a folder"));
      break;
    }
    return absl::OkStatus();
  }
  sqlite3* db = nullptr;
  absl::Status status = absl::OkStatus();
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK ||
      sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = absl::FailedPreconditionError(
        absl::StrCat(path, ": ", db == nullptr ? "out of memory" : sqlite3_errmsg(db)));
  }
  sqlite3_close(db);
  return status;
}

StateStore::~StateStore() { sqlite3_close(db_); }

bool StateStore::HasColumn(const char* table, const char* column) {
  Statement info(db_, absl::StrCat("PRAGMA table_info(", table, ")").c_str());
  while (info.status().ok()) {
    absl::StatusOr<bool> row = info.Step();
    if (!row.ok() || !*row) return false;
    if (info.Text(1) == column) return true;
  }
  return false;
}

absl::Status StateStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) == SQLITE_OK) return absl::OkStatus();
  absl::Status status = absl::InternalError(absl::StrCat("state file: ", error == nullptr ? "error" : error));
  sqlite3_free(error);
  return status;
}

absl::Status StateStore::SaveBuckets(const std::string& function,
                                     const std::map<int64_t, LedgerBucket>& buckets) {
  if (buckets.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(Exec("BEGIN"));
  Statement insert(db_,
                   "INSERT OR REPLACE INTO ledger_hours (function, hour, busy_s, idle_s, warming_s, off_s, "
                   "cold_starts, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  absl::Status status = insert.status();
  for (auto it = buckets.begin(); status.ok() && it != buckets.end(); ++it) {
    const LedgerBucket& b = it->second;
    status = insert.Bind(1, function)
                 .Bind(2, it->first)
                 .Bind(3, b.busy_s)
                 .Bind(4, b.idle_s)
                 .Bind(5, b.warming_s)
                 .Bind(6, b.off_s)
                 .Bind(7, b.cold_starts)
                 .Bind(8, b.cost)
                 .Run();
  }
  RETURN_IF_ERROR(Exec(status.ok() ? "COMMIT" : "ROLLBACK"));
  return status;
}

absl::Status StateStore::AppendColdWaits(const std::string& function, const std::vector<ColdWait>& waits) {
  if (waits.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(Exec("BEGIN"));
  Statement insert(db_, "INSERT INTO cold_waits (function, at_us, wait_s) VALUES (?, ?, ?)");
  absl::Status status = insert.status();
  for (size_t i = 0; status.ok() && i < waits.size(); ++i) {
    status = insert.Bind(1, function).Bind(2, ToMicros(waits[i].at)).Bind(3, waits[i].wait_s).Run();
  }
  RETURN_IF_ERROR(Exec(status.ok() ? "COMMIT" : "ROLLBACK"));
  return status;
}

absl::Status StateStore::SaveTrackingSince(const std::string& function, absl::Time since) {
  Statement insert(db_, "INSERT OR IGNORE INTO tracking (function, since_us) VALUES (?, ?)");
  RETURN_IF_ERROR(insert.status());
  return insert.Bind(1, function).Bind(2, ToMicros(since)).Run();
}

absl::StatusOr<StoredLedger> StateStore::LoadLedger() {
  StoredLedger ledger;
  Statement tracking(db_, "SELECT function, since_us FROM tracking");
  RETURN_IF_ERROR(tracking.status());
  while (true) {
    ASSIGN_OR_RETURN(bool row, tracking.Step());
    if (!row) break;
    ledger.tracking_since[tracking.Text(0)] = FromMicros(tracking.Int(1));
  }
  Statement hours(
      db_, "SELECT function, hour, busy_s, idle_s, warming_s, off_s, cold_starts, cost FROM ledger_hours");
  RETURN_IF_ERROR(hours.status());
  while (true) {
    ASSIGN_OR_RETURN(bool row, hours.Step());
    if (!row) break;
    ledger.buckets[hours.Text(0)][hours.Int(1)] =
        LedgerBucket{hours.Real(2), hours.Real(3), hours.Real(4),
                     hours.Real(5), hours.Int(6),  hours.IsNull(7) ? std::nan("") : hours.Real(7)};
  }
  Statement waits(db_, "SELECT function, at_us, wait_s FROM cold_waits ORDER BY at_us");
  RETURN_IF_ERROR(waits.status());
  while (true) {
    ASSIGN_OR_RETURN(bool row, waits.Step());
    if (!row) break;
    ledger.cold_waits[waits.Text(0)].push_back({FromMicros(waits.Int(1)), waits.Real(2)});
  }
  return ledger;
}

absl::Status StateStore::SaveArchiveMark(const std::string& function, const ArchiveMark& mark) {
  Statement upsert(
      db_,
      "INSERT OR REPLACE INTO archive_marks (function, archived, at_us, reason, operator_restored_us) "
      "VALUES (?, ?, ?, ?, ?)");
  RETURN_IF_ERROR(upsert.status());
  return upsert.Bind(1, function)
      .Bind(2, int64_t{mark.archived})
      .Bind(3, ToMicros(mark.at))
      .Bind(4, mark.reason)
      .Bind(5, ToMicros(mark.operator_restored_at))
      .Run();
}

absl::StatusOr<std::map<std::string, ArchiveMark>> StateStore::LoadArchiveMarks() {
  std::map<std::string, ArchiveMark> marks;
  Statement select(db_, "SELECT function, archived, at_us, reason, operator_restored_us FROM archive_marks");
  RETURN_IF_ERROR(select.status());
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    marks[select.Text(0)] =
        ArchiveMark{select.Int(1) != 0, FromMicros(select.Int(2)), select.Text(3), FromMicros(select.Int(4))};
  }
  return marks;
}

absl::Status StateStore::AppendTransition(const std::string& function, const Transition& transition) {
  Statement insert(
      db_, "INSERT INTO transitions (function, at_us, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)");
  RETURN_IF_ERROR(insert.status());
  RETURN_IF_ERROR(insert.Bind(1, function)
                      .Bind(2, ToMicros(transition.at))
                      .Bind(3, std::string(FunctionStateName(transition.from)))
                      .Bind(4, std::string(FunctionStateName(transition.to)))
                      .Bind(5, transition.reason)
                      .Run());
  Statement trim(db_,
                 "DELETE FROM transitions WHERE function = ? AND id NOT IN (SELECT id FROM transitions WHERE "
                 "function = ? ORDER BY id DESC LIMIT ?)");
  RETURN_IF_ERROR(trim.status());
  return trim.Bind(1, function)
      .Bind(2, function)
      .Bind(3, static_cast<int64_t>(FunctionStateMachine::kMaxHistory))
      .Run();
}

absl::StatusOr<std::map<std::string, std::vector<Transition>>> StateStore::LoadTransitions() {
  std::map<std::string, std::vector<Transition>> transitions;
  Statement select(db_, "SELECT function, at_us, from_state, to_state, reason FROM transitions ORDER BY id");
  RETURN_IF_ERROR(select.status());
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    Transition transition{FromMicros(select.Int(1)), FunctionState::kStopped, FunctionState::kStopped,
                          select.Text(4)};
    ParseFunctionState(select.Text(2), &transition.from);
    ParseFunctionState(select.Text(3), &transition.to);
    transitions[select.Text(0)].push_back(std::move(transition));
  }
  return transitions;
}

}  // namespace doze::lifecycle
