#!/usr/bin/perl
# Prints the rows of kubeblocks-datasafed-invocations.tsv for the files named on the command
# line (paths as they should appear in the table): every `datasafed SUBCOMMAND` call, with
# backslash-continued lines joined, from `datasafed` to the end of the (joined) line.
use strict;
use warnings;
my $prefix = shift @ARGV;    # shown before each path, e.g. "shared/kubeblocks/" or ""
for my $file (@ARGV) {
    open(my $fh, '<', $file) or die "$file: $!";
    my @lines = <$fh>;
    close $fh;
    for (my $i = 0; $i < @lines; $i++) {
        my $start = $i + 1;
        my $text  = $lines[$i];
        chomp $text;
        while ($text =~ s/\\\s*$// && $i + 1 < @lines) {
            my $next = $lines[++$i];
            chomp $next;
            $next =~ s/^\s+//;
            $text .= ' ' . $next;
        }
        next unless $text =~ /(datasafed (?:push|pull|list|stat|rm|rmdir|mkdir|getconf|version)\b.*)$/;
        next if $file =~ /\.md$/;
        my $call = $1;
        $call =~ s/\s+$//;
        $call =~ s/\t/ /g;
        $call =~ s/\s{2,}/ /g;
        print "$prefix$file\t$start\t$call\n";
    }
}
