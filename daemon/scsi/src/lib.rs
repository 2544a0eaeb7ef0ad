//! SCSI command set.
