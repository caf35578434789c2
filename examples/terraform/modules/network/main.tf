variable "cidr" {
  description = "The VPC's address range."
  type        = string
}

resource "aws_vpc" "main" {
  cidr_block = var.cidr

  tags = {
    Name = "main"
  }
}

output "vpc_id" {
  value = aws_vpc.main.id
}
