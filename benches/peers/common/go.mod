module driftguard.local/peers/common

go 1.26
