// Package pseudonym turns identities (distinct ids, device and user ids,
// group ids, identifier properties, emails) into keyed pseudonyms, so that
// nothing Veil stores can be linked to a person without a secret that is
// kept away from the data.
//
// # Threat model
//
// A plain hash of an email or user id is not a pseudonym: the input space is
// small and enumerable, so anyone holding a dump can hash a candidate list
// and join. A keyed hash (HMAC-SHA-256) cannot be computed without the key,
// and the key never lives in the data directory, so a copy of the data
// directory, a backup of it or an export from it does not contain what is
// needed to test guesses. This is the "pseudonymisation secret kept
// separately" of GDPR Art. 4(5) and of the EDPB guidelines 01/2025.
//
// Pseudonymised data is still personal data. The pseudonyms let whoever
// holds the key answer a data-subject request ("which events are this
// person's?") without Veil storing any reverse mapping.
//
// # Master key file
//
// The master key is 32 random bytes in a file outside the data directory
// (see [LoadOrCreateMasterKey]). The file is exactly 64 bytes:
//
//	veil-master-key-v1\n
//	<the 32 key bytes in standard base64 with padding: 44 characters>\n
//
// Nothing else is accepted: no comments, no CRLF, no missing final newline,
// no other key length and no all-zero key. The file must be a regular file
// owned by the effective user of the process with no group or other
// permission bits (0600 or 0400). A new file is created with 0600 in a
// directory created with 0700, written to a temporary file that is synced
// and then published under its final name (a hard link, so a key created at
// the same moment by another process is never replaced; a rename where the
// file system has no hard links), and the directory is synced.
//
// Losing the file loses the ability to compute pseudonyms for new data that
// match the old ones and to answer data-subject requests; back it up, apart
// from the data directory.
//
// # Derivation
//
// A project's key for one epoch is
//
//	K(project, epoch) = HKDF-SHA-256(ikm = master, salt = none,
//	                                 info = "veil/pseudonym/v1/project/<project id>/epoch/<epoch>",
//	                                 length = 32)
//
// with the project id and the epoch in decimal (the id may be negative; it
// is written with its sign). No salt is used (RFC 5869 §3.1: the master key
// is already uniformly random); the info string carries the domain. Distinct
// projects therefore have unrelated keys, and pseudonyms from two projects
// cannot be joined.
//
// A pseudonym is
//
//	"p" + <epoch in decimal> + "_" +
//	base64url-without-padding( HMAC-SHA-256(K(project, epoch),
//	                                        field || 0x00 || Normalize(field, value))[:16] )
//
// for example "p1_rtiIiFGooJuOdL2sTOhOHg" (22 characters after the
// underscore; 128 bits). The field name ([Field]: "distinct_id",
// "device_id", "group:company", "property:account_id", "email", ...)
// separates domains, so the same string in two fields gives two unrelated
// pseudonyms. Field names are chosen by code and policy, never taken from an
// event, and must not contain a NUL byte (the separator).
//
// [Normalize] trims Unicode white space, applies Unicode NFC and lower-cases
// email addresses, so "Alice@Example.com " and "alice@example.com" are the
// same person.
//
// [IsPseudonym] recognises the output shape, so a value that is already a
// pseudonym (an event re-processed, or an SDK sending back an id it was
// given) is never hashed twice.
//
// # Key epochs and rotation
//
// Each project's policy names the epoch used for new data. Rotating means
// raising the epoch:
//
//   - New data is pseudonymised under the new epoch and carries its number
//     in the prefix ("p2_..."), so it is always known which key made a
//     pseudonym.
//   - Old data stays as it was, under the old epoch. HMAC is one-way:
//     a stored pseudonym cannot be re-keyed without the raw identifier,
//     which Veil never has after ingestion. The same person therefore has
//     one pseudonym per epoch, and reports that count distinct users across
//     a rotation count them once per epoch. (An identity can be re-linked
//     when the client next sends the raw id: it is pseudonymised under the
//     new epoch and the identity link ties the two.)
//   - A controller looking a person up (a data-subject request, a breach
//     list) computes the pseudonym for every epoch in use for the project —
//     all of them come from the same master key — and searches for each.
//   - Retiring an epoch: once no data under it is kept, its key is simply
//     never derived again. Rotating the master key itself is the same, one
//     level up: data under the old master key can only be looked up with
//     the old key file, so keep it (offline) for as long as that data is.
//
// Deleting the master key (and every copy) makes every stored pseudonym
// unlinkable for good; that is crypto-shredding of the whole installation.
package pseudonym
