// The lifecycle's state file (SQLite): the ledger's hourly buckets and cold waits, archive marks and the last
// transitions of each function, so that a gateway restart loses none of them. Times are Unix microseconds.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/common/owner_lock.h"
#include "gateway/lifecycle/function_state_machine.h"
#include "gateway/lifecycle/ledger.h"

struct sqlite3;

namespace doze::lifecycle {

// Whether a function is archived, since when and why. `operator_restored_at` is the last restore by an
// operator, which starts a fresh utilisation window.
struct ArchiveMark {
  bool archived = false;
  absl::Time at = absl::InfinitePast();
  std::string reason;
  absl::Time operator_restored_at = absl::InfinitePast();
};

// Everything the ledger keeps, as read back.
struct StoredLedger {
  std::map<std::string, absl::Time> tracking_since;
  std::map<std::string, std::map<int64_t, LedgerBucket>> buckets;
  std::map<std::string, std::vector<ColdWait>> cold_waits;
};

class StateStore {
 public:
  // Opens (creating if needed) the SQLite file at `path`; ":memory:" gives a private in-memory store. A file
  // another live process holds open is refused: each writes its own hours over the other's.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& path);

  // What Open (with the gateway creating the folders) would refuse, found without creating, writing or
  // locking anything (`--check-config`, beside a running gateway): a folder, a path under a file, a file
  // that is not an SQLite database.
  static absl::Status CheckUsable(const std::string& path);

  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Replaces the stored buckets of `function` at the hours in `buckets`, in one transaction.
  absl::Status SaveBuckets(const std::string& function, const std::map<int64_t, LedgerBucket>& buckets);

  // Appends cold waits of `function`.
  absl::Status AppendColdWaits(const std::string& function, const std::vector<ColdWait>& waits);

  // Records when tracking of `function` began (kept if already recorded).
  absl::Status SaveTrackingSince(const std::string& function, absl::Time since);

  // Reads the whole ledger.
  absl::StatusOr<StoredLedger> LoadLedger();

  // Writes the archive mark of `function`.
  absl::Status SaveArchiveMark(const std::string& function, const ArchiveMark& mark);

  // Reads every archive mark.
  absl::StatusOr<std::map<std::string, ArchiveMark>> LoadArchiveMarks();

  // Appends one transition of `function`, keeping only the newest `FunctionStateMachine::kMaxHistory`.
  absl::Status AppendTransition(const std::string& function, const Transition& transition);

  // Reads the kept transitions of every function, oldest first.
  absl::StatusOr<std::map<std::string, std::vector<Transition>>> LoadTransitions();

 private:
  StateStore(sqlite3* db, gateway::OwnerLock lock) : db_(db), lock_(std::move(lock)) {}

  // Runs SQL that returns no rows.
  absl::Status Exec(const char* sql);

  // Whether `table` has `column`.
  bool HasColumn(const char* table, const char* column);

  sqlite3* db_;
  gateway::OwnerLock lock_;  // held while the file is open (none for ":memory:")
};

}  // namespace doze::lifecycle
