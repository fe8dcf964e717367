// Package segment owns Veil's immutable columnar segment files: one file
// holds the events of one project and one UTC day partition, sorted by
// (user ordinal, time). See FORMAT.md for the layout.
//
// A Writer streams sorted rows into a file, one block of BlockRows rows at
// a time per column, so that memory stays bounded whatever the segment's
// size. A Reader opens a file, checks its footer, and reads single column
// blocks, checking each block's CRC-32C: a corrupt file is reported with
// its path and never served.
package segment
