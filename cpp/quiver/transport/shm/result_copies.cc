#include "quiver/transport/shm/result_copies.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include <arrow/status.h>

namespace quiver::transport::shm {
namespace {

constexpr int64_t kSmallestPiece = int64_t{64} << 10;

// A power of two of at least `size` bytes: results of similar sizes share a piece.
int64_t PieceCapacity(int64_t size) {
  int64_t capacity = kSmallestPiece;
  while (capacity < size) capacity *= 2;
  return capacity;
}

}  // namespace

class ResultCopies::Piece {
 public:
  // Maps `capacity` bytes; pages are faulted in only where a copy writes.
  static arrow::Result<std::unique_ptr<Piece>> Map(int64_t capacity) {
    void* data = ::mmap(nullptr, static_cast<size_t>(capacity), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
      return arrow::Status::OutOfMemory("copying a shm result: mmap of ", capacity,
                                        " bytes: ", std::strerror(errno));
    }
    return std::unique_ptr<Piece>(new Piece(static_cast<uint8_t*>(data), capacity));
  }

  ~Piece() { ::munmap(data_, static_cast<size_t>(capacity_)); }
  Piece(const Piece&) = delete;
  Piece& operator=(const Piece&) = delete;

  uint8_t* data() const { return data_; }
  int64_t capacity() const { return capacity_; }

 private:
  Piece(uint8_t* data, int64_t capacity) : data_(data), capacity_(capacity) {}

  uint8_t* data_;
  int64_t capacity_;
};

class ResultCopies::Copied : public arrow::Buffer {
 public:
  Copied(std::shared_ptr<ResultCopies> pool, std::unique_ptr<Piece> piece, int64_t size)
      : arrow::Buffer(piece->data(), size), pool_(std::move(pool)), piece_(std::move(piece)) {}
  ~Copied() override { pool_->Give(std::move(piece_)); }

 private:
  std::shared_ptr<ResultCopies> pool_;
  std::unique_ptr<Piece> piece_;
};

std::shared_ptr<ResultCopies> ResultCopies::Make() {
  return std::shared_ptr<ResultCopies>(new ResultCopies());
}

ResultCopies::~ResultCopies() = default;

arrow::Result<std::shared_ptr<arrow::Buffer>> ResultCopies::Copy(const uint8_t* data,
                                                                 int64_t size) {
  std::unique_ptr<Piece> piece = Take(size);
  if (piece == nullptr) {
    ARROW_ASSIGN_OR_RAISE(piece, Piece::Map(PieceCapacity(size)));
    std::lock_guard<std::mutex> lock(mutex_);
    ++pieces_mapped_;
  }
  std::memcpy(piece->data(), data, static_cast<size_t>(size));
  return std::make_shared<Copied>(shared_from_this(), std::move(piece), size);
}

int64_t ResultCopies::pieces_mapped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pieces_mapped_;
}

int64_t ResultCopies::free_pieces() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(free_.size());
}

void ResultCopies::Give(std::unique_ptr<Piece> piece) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.size() >= kMaxFreePieces || free_bytes_ + piece->capacity() > kMaxFreeBytes) {
    return;  // unmapped as `piece` goes, after the lock is released
  }
  free_bytes_ += piece->capacity();
  free_.push_back(std::move(piece));
}

std::unique_ptr<ResultCopies::Piece> ResultCopies::Take(int64_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if ((*it)->capacity() < size) continue;
    if (best == free_.end() || (*it)->capacity() < (*best)->capacity()) best = it;
  }
  if (best == free_.end()) return nullptr;
  std::unique_ptr<Piece> piece = std::move(*best);
  free_.erase(best);
  free_bytes_ -= piece->capacity();
  return piece;
}

}  // namespace quiver::transport::shm
